//! The pre-1.6 stream format (FORMAT.md 4.1), as torch's `_legacy_save` writes it:
//!
//! 1. pickle of the magic number `0x1950a86a20f9469cfc6c` (LONG1),
//! 2. pickle of the protocol version 1001,
//! 3. pickle of `sys_info` (`protocol_version`, `little_endian`, `type_sizes`),
//! 4. the object pickle, storages as 6-tuple persistent ids with `view_metadata = None`,
//! 5. pickle of the storage keys sorted as strings,
//! 6. each storage in that order: its element count as little-endian i64, then its bytes.
//!
//! Keys look like torch's `str(storage._cdata)` (decimal heap addresses); only their
//! uniqueness matters to readers. Element counts are in units of the element type named by the
//! first persistent id of each storage (bytes for `UntypedStorage`), as `_write_file` does.

use super::pickler::{pickle_graph, pickle_value, PidStyle};
use crate::error::{Error, Result};
use crate::value::{Graph, Node, Value};
use num_bigint::BigInt;
use std::io::Write;

/// torch's `MAGIC_NUMBER`.
const MAGIC: u128 = 0x1950a86a20f9469cfc6c;
/// torch's `PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

pub fn write_legacy<W: Write>(graph: &Graph, protocol: u8, w: &mut W) -> Result<()> {
    let pickled = pickle_graph(graph, protocol, PidStyle::Legacy)?;
    let mut head = Graph::new();
    let magic = pickle_value(&head, &Value::BigInt(BigInt::from(MAGIC)), protocol)?;
    let version = pickle_value(&head, &Value::Int(PROTOCOL_VERSION), protocol)?;
    let sizes = head.add(Node::Dict(vec![
        (Value::Str("short".into()), Value::Int(2)),
        (Value::Str("int".into()), Value::Int(4)),
        (Value::Str("long".into()), Value::Int(4)),
    ]));
    let sys_info = head.add(Node::Dict(vec![
        (
            Value::Str("protocol_version".into()),
            Value::Int(PROTOCOL_VERSION),
        ),
        (Value::Str("little_endian".into()), Value::Bool(true)),
        (Value::Str("type_sizes".into()), sizes),
    ]));
    let sys_info = pickle_value(&head, &sys_info, protocol)?;

    let mut order: Vec<usize> = (0..pickled.storages.len()).collect();
    order.sort_by(|&a, &b| {
        let ka = pickled.storages.get(a).map(|s| s.key.as_str());
        let kb = pickled.storages.get(b).map(|s| s.key.as_str());
        ka.cmp(&kb)
    });
    let mut keys = Graph::new();
    let items = order
        .iter()
        .filter_map(|&i| pickled.storages.get(i))
        .map(|s| Value::Str(s.key.clone()))
        .collect();
    let key_list = keys.add(Node::List(items));
    let key_list = pickle_value(&keys, &key_list, protocol)?;

    let io = |e: std::io::Error| Error::io(e, "writing legacy stream");
    for part in [&magic, &version, &sys_info, &pickled.bytes, &key_list] {
        w.write_all(part).map_err(io)?;
    }
    for &i in &order {
        let Some(s) = pickled.storages.get(i) else {
            continue;
        };
        let st = graph
            .storages
            .get(s.storage)
            .ok_or_else(|| crate::err!(Unserializable, "missing storage {}", s.storage))?;
        let count = s.nbytes / s.dtype.element_size().max(1) as u64;
        w.write_all(&(count as i64).to_le_bytes()).map_err(io)?;
        w.write_all(st.data.as_slice()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_pickles_match_torch() {
        // FORMAT.md 4.1 (verified with torch): PROTO 2, LONG1 10 bytes, STOP / BININT2 1001.
        let g = Graph::new();
        let magic = pickle_value(&g, &Value::BigInt(BigInt::from(MAGIC)), 2).ok();
        assert_eq!(
            magic,
            Some(vec![
                0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
                0x2e
            ])
        );
        assert_eq!(
            pickle_value(&g, &Value::Int(1001), 2).ok(),
            Some(vec![0x80, 2, 0x4d, 0xe9, 0x03, 0x2e])
        );
    }
}
