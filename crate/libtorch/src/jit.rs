//! `NativeScriptModule`: a TorchScript archive compiled and run by libtorch (tch's `CModule`).
//!
//! Arguments and results cross as a JSON tree with tensors by index into a side array, so
//! the distinctions TorchScript's types make and JS values do not (int vs float, tuple vs
//! list) are spelled out by the facade (ts/jit/run.ts), and tensors cross as handles without
//! copies. The tree: `null`, `{"bool":b}`, `{"int":"123"}` (a decimal string: i64 is wider
//! than a JS number), `{"float":x}`, `{"str":s}`, `{"tensor":i}`, `{"device":"cuda:0"}`,
//! `{"tuple":[..]}`, `{"list":[..]}`, `{"dict":[[k,v],..]}`. A list whose items are all tensors
//! (ints, floats, bools, strings) becomes libtorch's typed list, as Python's would be when a
//! method is called with it; others are generic lists.
use crate::dtype;
use crate::errors::{self, OrCompute, Result};
use crate::native::NativeTensor;
use napi::bindgen_prelude::{ClassInstance, Uint8Array};
use napi_derive::napi;
use serde_json::{json, Value as Json};
use tch::jit::{CModule, IValue};

#[napi]
pub struct NativeScriptModule {
    inner: Option<CModule>,
    device: tch::Device,
}

/// A method's result: the tree (see the module docs) and the tensors it refers to.
#[napi(object, object_from_js = false)]
pub struct JitResult {
    pub value: String,
    pub tensors: Vec<NativeTensor>,
}

fn to_ivalue(v: &Json, tensors: &[ClassInstance<NativeTensor>]) -> Result<IValue> {
    let bad = || errors::invalid(format!("cannot pass {v} to TorchScript"));
    let Some(obj) = v.as_object() else {
        return if v.is_null() {
            Ok(IValue::None)
        } else {
            Err(bad())
        };
    };
    let (tag, x) = obj.iter().next().ok_or_else(bad)?;
    Ok(match tag.as_str() {
        "bool" => IValue::Bool(x.as_bool().ok_or_else(bad)?),
        "int" => IValue::Int(x.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?),
        "float" => IValue::Double(x.as_f64().ok_or_else(bad)?),
        "str" => IValue::String(x.as_str().ok_or_else(bad)?.to_string()),
        "device" => IValue::Device(dtype::device(x.as_str().ok_or_else(bad)?)?),
        "tensor" => {
            let i = x.as_u64().ok_or_else(bad)? as usize;
            let t = tensors.get(i).ok_or_else(bad)?;
            IValue::Tensor(t.t()?.shallow_clone())
        }
        "tuple" => IValue::Tuple(items(x, tensors)?),
        "list" => typed_list(items(x, tensors)?),
        "dict" => {
            let pairs = x.as_array().ok_or_else(bad)?;
            let mut out = Vec::with_capacity(pairs.len());
            for p in pairs {
                let Some([k, v]) = p.as_array().map(Vec::as_slice) else {
                    return Err(bad());
                };
                out.push((to_ivalue(k, tensors)?, to_ivalue(v, tensors)?));
            }
            IValue::GenericDict(out)
        }
        _ => return Err(bad()),
    })
}

fn items(x: &Json, tensors: &[ClassInstance<NativeTensor>]) -> Result<Vec<IValue>> {
    let arr = x
        .as_array()
        .ok_or_else(|| errors::invalid("a TorchScript list or tuple must be an array"))?;
    arr.iter().map(|v| to_ivalue(v, tensors)).collect()
}

/// `List[Tensor]`, `List[int]`, ... when every item has that type; else a generic list.
fn typed_list(v: Vec<IValue>) -> IValue {
    fn all<T>(v: &[IValue], f: impl Fn(&IValue) -> Option<T>) -> Option<Vec<T>> {
        v.iter().map(f).collect()
    }
    if v.is_empty() {
        return IValue::GenericList(v);
    }
    if let Some(ts) = all(&v, |x| match x {
        IValue::Tensor(t) => Some(t.shallow_clone()),
        _ => None,
    }) {
        return IValue::TensorList(ts);
    }
    if let Some(is) = all(&v, |x| match x {
        IValue::Int(i) => Some(*i),
        _ => None,
    }) {
        return IValue::IntList(is);
    }
    if let Some(ds) = all(&v, |x| match x {
        IValue::Double(d) => Some(*d),
        _ => None,
    }) {
        return IValue::DoubleList(ds);
    }
    if let Some(bs) = all(&v, |x| match x {
        IValue::Bool(b) => Some(*b),
        _ => None,
    }) {
        return IValue::BoolList(bs);
    }
    if let Some(ss) = all(&v, |x| match x {
        IValue::String(s) => Some(s.clone()),
        _ => None,
    }) {
        return IValue::StringList(ss);
    }
    IValue::GenericList(v)
}

fn from_ivalue(v: IValue, out: &mut Vec<NativeTensor>) -> Result<Json> {
    let tensor = |t: tch::Tensor, out: &mut Vec<NativeTensor>| {
        out.push(NativeTensor::wrap(t));
        json!({ "tensor": out.len() - 1 })
    };
    Ok(match v {
        IValue::None => Json::Null,
        IValue::Bool(b) => json!({ "bool": b }),
        IValue::Int(i) => json!({ "int": i.to_string() }),
        IValue::Double(d) => json!({ "float": d }),
        IValue::String(s) => json!({ "str": s }),
        IValue::Device(d) => json!({ "device": dtype::device_name(d) }),
        IValue::Tensor(t) => tensor(t, out),
        IValue::Tuple(v) => json!({ "tuple": list(v, out)? }),
        IValue::GenericList(v) => json!({ "list": list(v, out)? }),
        IValue::TensorList(v) => {
            json!({ "list": v.into_iter().map(|t| tensor(t, out)).collect::<Vec<_>>() })
        }
        IValue::IntList(v) => {
            json!({ "list": v.iter().map(|i| json!({ "int": i.to_string() })).collect::<Vec<_>>() })
        }
        IValue::DoubleList(v) => {
            json!({ "list": v.iter().map(|d| json!({ "float": d })).collect::<Vec<_>>() })
        }
        IValue::BoolList(v) => {
            json!({ "list": v.iter().map(|b| json!({ "bool": b })).collect::<Vec<_>>() })
        }
        IValue::StringList(v) => {
            json!({ "list": v.iter().map(|s| json!({ "str": s })).collect::<Vec<_>>() })
        }
        IValue::GenericDict(pairs) => {
            let mut kv = Vec::with_capacity(pairs.len());
            for (k, v) in pairs {
                kv.push(json!([from_ivalue(k, out)?, from_ivalue(v, out)?]));
            }
            json!({ "dict": kv })
        }
        // Objects (and any kind a later tch adds) have no data form on the JS side.
        _ => {
            return Err(errors::invalid(
                "the method returned a TorchScript object; return tensors, numbers, strings or containers of them",
            ))
        }
    })
}

fn list(v: Vec<IValue>, out: &mut Vec<NativeTensor>) -> Result<Vec<Json>> {
    v.into_iter().map(|x| from_ivalue(x, out)).collect()
}

/// The device for a module: a CUDA device this machine lacks is `E_DEVICE_UNAVAILABLE` (libtorch
/// would fail later with a less useful message).
fn module_device(name: &str) -> Result<tch::Device> {
    let d = dtype::device(name)?;
    if let tch::Device::Cuda(i) = d {
        let n = tch::Cuda::device_count();
        if i64::try_from(i).unwrap_or(i64::MAX) >= n {
            return Err(errors::device(format!(
                "device '{name}' is not available: this machine has {n} CUDA device(s)"
            )));
        }
    }
    Ok(d)
}

#[napi]
impl NativeScriptModule {
    /// `torch.jit.load(path, map_location=device)`: libtorch compiles the archive's code.
    #[napi(factory)]
    pub fn load(path: String, device: String) -> Result<Self> {
        let device = module_device(&device)?;
        let inner = errors::no_panic(|| CModule::load_on_device(&path, device).or_compute())?;
        Ok(Self {
            inner: Some(inner),
            device,
        })
    }

    /// The same from the archive's bytes.
    #[napi(factory)]
    pub fn load_bytes(bytes: Uint8Array, device: String) -> Result<Self> {
        let device = module_device(&device)?;
        let mut cursor = std::io::Cursor::new(bytes.as_ref());
        let inner =
            errors::no_panic(|| CModule::load_data_on_device(&mut cursor, device).or_compute())?;
        Ok(Self {
            inner: Some(inner),
            device,
        })
    }

    fn m(&self) -> Result<&CModule> {
        self.inner
            .as_ref()
            .ok_or_else(|| errors::invalid("this ScriptModule was disposed"))
    }

    /// Runs method `name` with `args` (a JSON array of trees, see the module docs).
    #[napi]
    pub fn call(
        &self,
        name: String,
        args: String,
        tensors: Vec<ClassInstance<NativeTensor>>,
    ) -> Result<JitResult> {
        let m = self.m()?;
        let parsed: Json = serde_json::from_str(&args)
            .map_err(|e| errors::internal(format!("bad TorchScript argument tree: {e}")))?;
        let ivs = items(&parsed, &tensors)?;
        let out = errors::no_panic(|| m.method_is(&name, &ivs).or_compute())?;
        let mut ts = Vec::new();
        let value = from_ivalue(out, &mut ts)?.to_string();
        Ok(JitResult { value, tensors: ts })
    }

    /// `train(mode)` on libtorch's module (and every submodule).
    #[napi]
    pub fn set_training(&mut self, training: bool) -> Result<()> {
        let m = self
            .inner
            .as_mut()
            .ok_or_else(|| errors::invalid("this ScriptModule was disposed"))?;
        errors::no_panic(|| {
            if training {
                m.f_set_train().or_compute()
            } else {
                m.f_set_eval().or_compute()
            }
        })
    }

    /// `module.to(device)`. tch's `CModule::to` also casts every parameter and buffer to one
    /// dtype (integer buffers included), so the module goes through its own archive instead:
    /// saved by libtorch and loaded back onto `device`, state and training flag included.
    #[napi]
    pub fn move_to(&mut self, device: String) -> Result<()> {
        let device = module_device(&device)?;
        if device == self.device {
            return Ok(());
        }
        let m = self.m()?;
        let dir = std::env::temp_dir().join(format!(
            "torchsave-jit-{}-{:p}.pt",
            std::process::id(),
            m as *const CModule
        ));
        let moved = errors::no_panic(|| {
            m.save(&dir).or_compute()?;
            CModule::load_on_device(&dir, device).or_compute()
        });
        let _ = std::fs::remove_file(&dir);
        self.inner = Some(moved?);
        self.device = device;
        Ok(())
    }

    /// The device the module's tensors are on.
    #[napi(getter)]
    pub fn device(&self) -> String {
        dtype::device_name(self.device)
    }

    /// `named_parameters()` as libtorch sees them (the live tensors the methods use).
    #[napi]
    pub fn named_parameters(&self) -> Result<Vec<NamedTensor>> {
        let m = self.m()?;
        let ps = errors::no_panic(|| m.named_parameters().or_compute())?;
        Ok(ps
            .into_iter()
            .map(|(name, t)| NamedTensor {
                name,
                tensor: NativeTensor::wrap(t),
            })
            .collect())
    }

    /// Frees libtorch's module now (a later call is `E_INVALID_ARGUMENT`).
    #[napi]
    pub fn dispose(&mut self) {
        self.inner = None;
    }
}

/// One entry of `NativeScriptModule::named_parameters`.
#[napi(object, object_from_js = false)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: NativeTensor,
}
