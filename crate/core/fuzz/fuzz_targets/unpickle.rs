//! The raw pickle VM, outside any container. Persistent ids are answered with an error, so
//! every path that reaches BINPERSID/PERSID must propagate it rather than panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchsave_core::pickle::{unpickle, PersistentLoad, UnpickleOptions};
use torchsave_core::value::{Graph, Value};
use torchsave_core::Result;

struct Refuse;

impl PersistentLoad for Refuse {
    fn persistent_load(&mut self, _graph: &mut Graph, _pid: Value) -> Result<Value> {
        Err(torchsave_core::err!(MissingRecord, "fuzz: no storages"))
    }
}

fuzz_target!(|data: &[u8]| {
    for weights_only in [true, false] {
        let opts = UnpickleOptions {
            weights_only,
            ..UnpickleOptions::default()
        };
        let mut graph = Graph::new();
        match unpickle(data, &mut graph, &opts, &mut Refuse) {
            Ok(out) => assert!(out.consumed <= data.len()),
            Err(e) => assert!(e.code.as_str().starts_with("E_")),
        }
    }
});
