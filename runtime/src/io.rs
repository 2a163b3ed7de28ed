//! Weights files in the [safetensors](https://huggingface.co/docs/safetensors) format.
//!
//! A network is saved as one tensor per layer weight and bias, named and shaped by
//! [`Network::tensors`] (`"hidden.w"` with shape `[OUT, IN]`, `"hidden.b"` with `[OUT]`), of
//! dtype `F32` or `F64` after [`Scalar::NAME`]. Loading checks that the
//! file has exactly these tensors, each named once, with these shapes and this dtype, and (unless
//! [`LoadOptions::allow_non_finite`] is set) that every value is finite; any difference is a
//! [`WeightsError`], never a panic.
//!
//! ```
//! # use symnet_macros::network;
//! # use symnet_runtime as symnet;
//! network! {
//!     pub struct Xor<f32> { input: 2, hidden: dense(4) -> tanh, out: dense(1) -> sigmoid, loss: binary_cross_entropy }
//! }
//!
//! let net = Xor::init(1);
//! let path = std::env::temp_dir().join(format!("xor-{}.safetensors", std::process::id()));
//! symnet::io::save_weights(&net, &path)?;
//! let back: Xor = symnet::io::load_weights(&path)?;
//! assert_eq!(back.params(), net.params());
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Models: weights and preprocessing in one file
//!
//! [`save_model`] writes a [`Standardizer`] into the same file as the weights, as `F64` tensors
//! named [`X_MEAN`], [`X_STD`] (shape `[INPUTS]`) and, if it scales the targets, [`Y_MEAN`],
//! [`Y_STD`] (shape `[OUTPUTS]`); [`load_model`] restores both, so that a reloaded model
//! takes and gives values in raw units ([`Standardizer::predict`]). [`load_weights`] ignores
//! these four tensors: a model file is also a weights file.
//!
//! # PyTorch
//!
//! [`load_torch`] reads a PyTorch `state_dict` saved with `safetensors.torch.save_file`, whose
//! `nn.Linear` layers are named `<module>.weight` (shape `[out_features, in_features]`, the
//! layout of [`Dense::w`](crate::Dense)) and `<module>.bias`, matching modules to the network's
//! layers by [`TorchNames`]; [`save_torch`] writes a network the other way, for
//! `model.load_state_dict(safetensors.torch.load_file(path))`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use safetensors::tensor::{SafeTensorError, TensorView};
use safetensors::{Dtype, SafeTensors};

use crate::data::{excerpt, Standardizer, EXCERPT_BYTES};
use crate::{Network, Scalar};

/// The most bytes of a message from the safetensors or JSON parser that an error keeps (the
/// parsers quote parts of the file, which may be huge).
const MESSAGE_BYTES: usize = 512;

/// How many names [`WeightsError::ExtraTensors`] shows in its message.
const SHOWN_NAMES: usize = 8;

pub use crate::__private::{X_MEAN, X_STD, Y_MEAN, Y_STD};

// The standardizer's tensors, which `load_weights` ignores.
use crate::__private::STANDARDIZER_TENSORS;

/// Options of [`from_bytes_with`] and [`load_weights_with`] (and of [`model_from_bytes_with`],
/// [`load_model_with`], [`from_torch_bytes`] and [`load_torch`]); [`from_bytes`],
/// [`load_weights`], [`model_from_bytes`] and [`load_model`] use the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept NaN and infinite weights. Default `false`: a file holding one is refused with
    /// [`WeightsError::NonFinite`], since a network with such a weight computes NaN (or
    /// infinity) for every input that reaches it.
    pub allow_non_finite: bool,
}

/// How the tensors of a PyTorch `state_dict` correspond to the network's layers, for
/// [`load_torch`] and [`save_torch`].
///
/// Each layer of the network is an `nn.Linear` module in PyTorch: its `w` is the module's
/// `weight` (`[out_features, in_features]`, the same layout) and its `b` the module's `bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TorchNames<'a> {
    /// The names of an `nn.Sequential`: `<index>.weight` and `<index>.bias`, possibly under a
    /// common prefix (`model.0.weight`, `encoder.layers.2.bias`).
    ///
    /// Loading orders the modules that have a weight or bias by their index and gives them to
    /// the network's layers in order; the indices need not be consecutive (activation modules
    /// have no parameters: `Sequential(Linear, ReLU, Linear)` has `0.*` and `2.*`). Every
    /// tensor must belong to such a module, all under the same prefix, and there must be as many
    /// modules as layers.
    ///
    /// Saving names layer `k` (0-based) `<2k>.weight` and `<2k>.bias`: the indices of
    /// `nn.Sequential(Linear, activation, Linear, activation, ..., Linear)`, one activation
    /// module after every layer but the last. For another arrangement (a hidden layer without
    /// an activation module, a dropout module), give the indices with [`TorchNames::Map`], such
    /// as `[("hidden", "0"), ("out", "3")]`.
    Sequential,
    /// `(layer, module)` pairs: the network's layer `layer` is the PyTorch module `module`, whose
    /// tensors are `<module>.weight` and `<module>.bias` (`("hidden", "fc1")`: `fc1.weight` is
    /// `hidden.w`). `module` is the full path in the `state_dict` (`"model.fc1"`); an empty
    /// `module` stands for tensors named `weight` and `bias` alone (the `state_dict` of one
    /// `nn.Linear`). Every layer of the network must appear exactly once, and no module twice.
    Map(&'a [(&'a str, &'a str)]),
}

/// The message of [`WeightsError::ExtraTensors`]: the first few names, each cut after 64 bytes.
fn name_list(names: &[String]) -> String {
    let mut shown: Vec<String> = names
        .iter()
        .take(SHOWN_NAMES)
        .map(|n| excerpt(n, EXCERPT_BYTES))
        .collect();
    if names.len() > SHOWN_NAMES {
        shown.push(format!("and {} more", names.len() - SHOWN_NAMES));
    }
    shown.join(", ")
}

/// An error while saving or loading weights.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The data ends before the header or the tensors it declares do (or has bytes after them).
    #[error("truncated weights file: {0}")]
    Truncated(String),
    /// The bytes are not a safetensors file (bad header length, header not UTF-8 or not the
    /// expected JSON, inconsistent offsets). The message is cut after 512 bytes.
    #[error("not a valid safetensors file: {0}")]
    Invalid(String),
    /// The header names a tensor twice (a JSON object with a repeated key: which one would be
    /// meant is ambiguous, so the file is refused).
    #[error("the file names tensor `{name}` more than once")]
    DuplicateTensor {
        /// The tensor's name (cut after 64 bytes, as in [`DataError`](crate::data::DataError)).
        name: String,
    },
    /// A weight is NaN or infinite, and [`LoadOptions::allow_non_finite`] is not set.
    #[error("tensor `{name}` holds a value that is not finite (NaN or infinite) at index {index}; set `LoadOptions::allow_non_finite` to load it anyway")]
    NonFinite {
        /// The tensor's name.
        name: String,
        /// The 0-based position of the first such value in the tensor, in row-major order.
        index: usize,
    },
    /// The network has a tensor that the file lacks.
    #[error("the file has no tensor `{name}` (was it saved from another network?)")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// The file has tensors that the network does not.
    #[error("the file has tensors the network does not have: {}", name_list(names))]
    ExtraTensors {
        /// Their names, sorted (all of them; the message shows the first 8, each cut after 64
        /// bytes).
        names: Vec<String>,
    },
    /// A tensor has another shape than the network's.
    #[error("tensor `{name}` has shape {found:?}, but the network expects {expected:?}")]
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The network's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor has another dtype than the network's scalar.
    #[error("tensor `{name}` has dtype {found}, but the network's scalar is {expected}")]
    WrongDtype {
        /// The tensor's name.
        name: String,
        /// The network's dtype (`F32` or `F64`).
        expected: String,
        /// The file's dtype.
        found: String,
    },
    /// The file is larger than any weights file of the network can be (an 8-byte length, a
    /// header of at most 100 MB, and the network's parameters as `f64`): it was not read whole.
    #[error("{}: the file is larger than {limit} bytes, the most a weights file of this network can be", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The size limit in bytes.
        limit: u64,
    },
    /// The network's scalar type is neither `f32` nor `f64`.
    #[error("unsupported scalar type `{0}` (weights files hold f32 or f64)")]
    UnsupportedScalar(&'static str),
    /// The network's `tensors()` do not add up to its `PARAMS` (a bug in the network's impl).
    #[error("the network's tensors hold {tensors} values but it has {params} parameters")]
    Layout {
        /// The total size of `tensors()`.
        tensors: usize,
        /// `PARAMS`.
        params: usize,
    },
    /// A standardizer's tensor in a model file is unusable (wrong dtype or shape, a mean that is
    /// not finite, a scale that is not positive and finite, one of a pair missing), or a
    /// standardizer given to [`save_model`] does not have the network's widths.
    #[error("standardizer tensor `{name}` {reason}")]
    Standardizer {
        /// The tensor's name ([`X_MEAN`], [`X_STD`], [`Y_MEAN`] or [`Y_STD`]).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A PyTorch tensor that a layer needs is not in the file.
    #[error("the file has no tensor `{torch}` (for the network's `{tensor}`)")]
    TorchMissing {
        /// The PyTorch name looked for (cut after 64 bytes).
        torch: String,
        /// The network's tensor it would fill (`"out.w"`).
        tensor: String,
    },
    /// A PyTorch tensor has another shape than the network's tensor it is loaded into.
    #[error("tensor `{torch}` (for the network's `{tensor}`) has shape {found:?}, but the network expects {expected:?}")]
    TorchShape {
        /// The PyTorch name (cut after 64 bytes).
        torch: String,
        /// The network's tensor (`"out.w"`).
        tensor: String,
        /// The network's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A PyTorch tensor is not of a floating-point dtype that [`load_torch`] converts.
    #[error("tensor `{torch}` (for the network's `{tensor}`) has dtype {found}; weights from PyTorch must be F32, F64, F16 or BF16")]
    TorchDtype {
        /// The PyTorch name (cut after 64 bytes).
        torch: String,
        /// The network's tensor (`"out.w"`).
        tensor: String,
        /// The file's dtype.
        found: String,
    },
    /// The file's tensor names (with [`TorchNames::Sequential`]) or the name map (with
    /// [`TorchNames::Map`]) do not match the network's layers one to one.
    #[error("PyTorch names: {0}")]
    TorchNames(String),
}

fn dtype_of<T: Scalar>() -> Result<Dtype, WeightsError> {
    match T::NAME {
        "f32" => Ok(Dtype::F32),
        "f64" => Ok(Dtype::F64),
        other => Err(WeightsError::UnsupportedScalar(other)),
    }
}

fn check_layout<N: Network>() -> Result<(), WeightsError> {
    let total: usize = N::tensors()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    if total != N::PARAMS || N::PARAMS != N::zeros().params().len() {
        return Err(WeightsError::Layout {
            tensors: total,
            params: N::PARAMS,
        });
    }
    Ok(())
}

/// One tensor to write: name, dtype, shape, little-endian data.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

/// The network's tensors as entries of its scalar's dtype, the `k`-th tensor of
/// [`Network::tensors`] named `name(k, its name)`.
fn net_entries<N: Network>(
    net: &N,
    name: impl Fn(usize, &str) -> String,
) -> Result<Vec<Entry>, WeightsError> {
    check_layout::<N>()?;
    let dtype = dtype_of::<N::Scalar>()?;
    let mut entries = Vec::with_capacity(N::tensors().len());
    let mut params = net.params();
    for (k, (tensor, shape)) in N::tensors().iter().enumerate() {
        let n: usize = shape.iter().product();
        let (values, rest) = params.split_at(n);
        params = rest;
        let mut bytes = Vec::with_capacity(n * 8);
        for v in values {
            match dtype {
                Dtype::F32 => bytes.extend((v.to_f64() as f32).to_le_bytes()),
                _ => bytes.extend(v.to_f64().to_le_bytes()),
            }
        }
        entries.push((name(k, tensor), dtype, shape.to_vec(), bytes));
    }
    Ok(entries)
}

/// A safetensors file of `entries`, with `metadata` in its `__metadata__`.
fn serialize(
    entries: &[Entry],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, WeightsError> {
    let views = entries
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.as_str(), v))
                .map_err(|e| WeightsError::Invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata).map_err(|e| WeightsError::Invalid(e.to_string()))
}

/// The network's weights as the bytes of a safetensors file.
pub fn to_bytes<N: Network>(net: &N) -> Result<Vec<u8>, WeightsError> {
    serialize(&net_entries(net, |_, name| name.to_owned())?, None)
}

/// A network from the bytes of a safetensors file, every tensor checked against the network;
/// a NaN or infinite weight is an error ([`from_bytes_with`] with the default [`LoadOptions`]).
pub fn from_bytes<N: Network>(bytes: &[u8]) -> Result<N, WeightsError> {
    from_bytes_with(bytes, &LoadOptions::default())
}

/// A network from the bytes of a safetensors file, every tensor checked against the network.
///
/// The file must have exactly the network's tensors ([`Network::tensors`]), each named once
/// ([`WeightsError::DuplicateTensor`]), with the network's shapes and dtype; unless
/// `options.allow_non_finite` is set, every value must be finite ([`WeightsError::NonFinite`]).
/// The tensors of a [`Standardizer`] written by [`save_model`] ([`X_MEAN`], [`X_STD`],
/// [`Y_MEAN`], [`Y_STD`]) are ignored; any other tensor is an error
/// ([`WeightsError::ExtraTensors`]).
pub fn from_bytes_with<N: Network>(bytes: &[u8], options: &LoadOptions) -> Result<N, WeightsError> {
    check_layout::<N>()?;
    let dtype = dtype_of::<N::Scalar>()?;
    let st = parse(bytes)?;
    let net = read_net::<N>(&st, dtype, options)?;
    check_extra(&st, |name| {
        is_net_tensor::<N>(name) || STANDARDIZER_TENSORS.contains(&name)
    })?;
    Ok(net)
}

/// The file parsed, after the runtime's own checks of the header.
fn parse(bytes: &[u8]) -> Result<SafeTensors<'_>, WeightsError> {
    // Pre-checks of the 8-byte header length, for clearer errors than the parser's.
    let Some(len) = bytes.get(..8) else {
        return Err(WeightsError::Truncated(format!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(len.try_into().unwrap_or_default());
    if header_len > MAX_HEADER_BYTES {
        return Err(WeightsError::Invalid(format!(
            "header length {header_len} is implausible"
        )));
    }
    // At most 100 MB, so that it fits a usize.
    let header_len = header_len as usize;
    let Some(header) = bytes.get(8..8 + header_len) else {
        return Err(WeightsError::Truncated(format!(
            "the header is {header_len} bytes but only {} follow the length",
            bytes.len() - 8
        )));
    };
    let data_len = bytes.len() - 8 - header_len;
    // The runtime's own reading of the header: duplicate names (which the safetensors crate
    // resolves silently, the last one winning) and offsets beyond the data. A header that this
    // reading does not understand is left to the safetensors crate to report.
    if let Ok(scan) = serde_json::from_slice::<HeaderScan>(header) {
        if let Some(name) = scan.duplicate {
            return Err(WeightsError::DuplicateTensor {
                name: excerpt(&name, EXCERPT_BYTES),
            });
        }
        if let Some((name, end)) = scan.last_end {
            if end > data_len as u64 {
                return Err(WeightsError::Truncated(format!(
                    "tensor `{}` ends at byte {end} of the data, but only {data_len} bytes follow the header",
                    excerpt(&name, EXCERPT_BYTES)
                )));
            }
        }
    }
    SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => WeightsError::Truncated(
            "the data section does not match the tensors declared in the header".into(),
        ),
        e => WeightsError::Invalid(excerpt(&e.to_string(), MESSAGE_BYTES)),
    })
}

/// The values of a tensor of dtype `F32` or `F64` (any other gives `None`), as `f64`.
fn float_values(t: &TensorView<'_>) -> Option<Vec<f64>> {
    let data = t.data();
    Some(match t.dtype() {
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()) as f64)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])) as f64)
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16) as f64)
            .collect(),
        _ => return None,
    })
}

/// An IEEE half-precision value as `f32` (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        // Zero and subnormals: man * 2^-24, exact in f32.
        0 => {
            let v = man as f32 / 16_777_216.0;
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        // Infinities and NaN.
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// Writes `values` into the network's parameters from `offset`, converted to its scalar, checking
/// finiteness (after the conversion) unless allowed; `name` is the file's name for errors.
fn store<N: Network>(
    net: &mut N,
    offset: usize,
    values: &[f64],
    name: &str,
    options: &LoadOptions,
) -> Result<(), WeightsError> {
    let out = &mut net.params_mut()[offset..offset + values.len()];
    for (index, (o, &v)) in out.iter_mut().zip(values).enumerate() {
        *o = N::Scalar::from_f64(v);
        if !options.allow_non_finite && !o.is_finite() {
            return Err(WeightsError::NonFinite {
                name: excerpt(name, EXCERPT_BYTES),
                index,
            });
        }
    }
    Ok(())
}

/// The network's tensors read from the file under their own names, in dtype `dtype` exactly.
fn read_net<N: Network>(
    st: &SafeTensors<'_>,
    dtype: Dtype,
    options: &LoadOptions,
) -> Result<N, WeightsError> {
    let mut net = N::zeros();
    let mut offset = 0;
    for (name, shape) in N::tensors() {
        let t = st.tensor(name).map_err(|_| WeightsError::MissingTensor {
            name: (*name).to_owned(),
        })?;
        if t.dtype() != dtype {
            return Err(WeightsError::WrongDtype {
                name: (*name).to_owned(),
                expected: format!("{dtype}"),
                found: format!("{}", t.dtype()),
            });
        }
        if t.shape() != *shape {
            return Err(WeightsError::WrongShape {
                name: (*name).to_owned(),
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        // F32 or F64, as checked; both convert to the scalar of that dtype exactly.
        let values = float_values(&t).unwrap_or_default();
        store(&mut net, offset, &values, name, options)?;
        offset += values.len();
    }
    Ok(net)
}

/// Whether `name` is one of the network's tensors.
fn is_net_tensor<N: Network>(name: &str) -> bool {
    N::tensors().iter().any(|(m, _)| *m == name)
}

/// [`WeightsError::ExtraTensors`] with the file's tensors that are not `known`, if any.
fn check_extra(st: &SafeTensors<'_>, known: impl Fn(&str) -> bool) -> Result<(), WeightsError> {
    let mut extra: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !known(n))
        .map(str::to_owned)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(WeightsError::ExtraTensors { names: extra });
    }
    Ok(())
}

/// The largest header the safetensors format allows (and the safetensors crate reads).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What the runtime reads of a safetensors header itself: the first name given twice, and the
/// tensor whose data ends last, with that end.
#[derive(Default)]
struct HeaderScan {
    duplicate: Option<String>,
    last_end: Option<(String, u64)>,
}

impl<'de> serde::Deserialize<'de> for HeaderScan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ScanVisitor)
    }
}

struct ScanVisitor;

impl<'de> serde::de::Visitor<'de> for ScanVisitor {
    type Value = HeaderScan;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object of tensors")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<HeaderScan, A::Error> {
        let mut scan = HeaderScan::default();
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let TensorEntry { end } = map.next_value()?;
            if let Some(end) = end {
                if scan.last_end.as_ref().is_none_or(|(_, last)| end > *last) {
                    scan.last_end = Some((name.clone(), end));
                }
            }
            if seen.contains(&name) {
                scan.duplicate.get_or_insert(name);
            } else {
                seen.insert(name);
            }
        }
        Ok(scan)
    }
}

/// One tensor of a header, of which only the largest data offset is kept. Like the safetensors
/// crate, it accepts an object (`{"dtype": .., "shape": .., "data_offsets": [s, e]}`) or an
/// array (`[dtype, shape, [s, e]]`).
struct TensorEntry {
    end: Option<u64>,
}

impl<'de> serde::Deserialize<'de> for TensorEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> serde::de::Visitor<'de> for EntryVisitor {
    type Value = TensorEntry;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a tensor's dtype, shape and data offsets")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TensorEntry, A::Error> {
        let mut end = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "data_offsets" {
                end = map.next_value::<Vec<u64>>()?.into_iter().max();
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(TensorEntry { end })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TensorEntry, A::Error> {
        use serde::de::IgnoredAny;
        let mut end = None;
        if seq.next_element::<IgnoredAny>()?.is_some()
            && seq.next_element::<IgnoredAny>()?.is_some()
        {
            end = seq
                .next_element::<Vec<u64>>()?
                .and_then(|o| o.into_iter().max());
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TensorEntry { end })
    }
}

/// Saves the network's weights to a safetensors file.
pub fn save_weights<N: Network>(net: &N, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    write(path.as_ref(), to_bytes(net)?)
}

/// Writes `bytes` to `path`.
fn write(path: &Path, bytes: Vec<u8>) -> Result<(), WeightsError> {
    std::fs::write(path, bytes).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a network's weights from a safetensors file, every tensor checked against the network;
/// a NaN or infinite weight is an error ([`load_weights_with`] with the default
/// [`LoadOptions`]).
pub fn load_weights<N: Network>(path: impl AsRef<Path>) -> Result<N, WeightsError> {
    load_weights_with(path, &LoadOptions::default())
}

/// Loads a network's weights from a safetensors file, checked as by [`from_bytes_with`].
///
/// The file is read up to the largest size a weights file of this network can have (an 8-byte
/// length, a header of at most 100 MB, and the parameters); a larger file is refused with
/// [`WeightsError::TooLarge`] without reading it all.
pub fn load_weights_with<N: Network>(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<N, WeightsError> {
    let path = path.as_ref();
    let bytes = read_at_most(path, weights_limit::<N>())?;
    from_bytes_with(&bytes, options)
}

/// The largest weights file of the network: an 8-byte length, a header of at most 100 MB, the
/// parameters as `f64`.
fn weights_limit<N: Network>() -> u64 {
    8 + MAX_HEADER_BYTES + N::PARAMS as u64 * 8
}

// ---------------------------------------------------------------------------------------------
// Models: weights and a standardizer.

/// Checks the values of a standardizer's tensor `name`: finite means, positive finite scales.
fn check_statistics(name: &str, values: &[f64]) -> Result<(), WeightsError> {
    let is_std = name == X_STD || name == Y_STD;
    let bad = values
        .iter()
        .position(|v| !v.is_finite() || is_std && *v <= 0.0);
    match bad {
        None => Ok(()),
        Some(index) => Err(WeightsError::Standardizer {
            name: name.to_owned(),
            reason: format!(
                "holds {} at index {index}, but {}",
                values[index],
                if is_std {
                    "a standard deviation must be positive and finite"
                } else {
                    "a mean must be finite"
                }
            ),
        }),
    }
}

/// The network's weights and, if given, a standardizer, as the bytes of a safetensors file
/// (see [`save_model`]).
pub fn model_to_bytes<N: Network>(
    net: &N,
    standardizer: Option<&Standardizer>,
) -> Result<Vec<u8>, WeightsError> {
    let mut entries = net_entries(net, |_, name| name.to_owned())?;
    if let Some(s) = standardizer {
        let mut stats = vec![
            (X_MEAN, s.mean(), N::INPUTS, "inputs"),
            (X_STD, s.std(), N::INPUTS, "inputs"),
        ];
        if let (Some(mean), Some(std)) = (s.target_mean(), s.target_std()) {
            stats.push((Y_MEAN, mean, N::OUTPUTS, "outputs"));
            stats.push((Y_STD, std, N::OUTPUTS, "outputs"));
        }
        for (name, values, width, what) in stats {
            if values.len() != width {
                return Err(WeightsError::Standardizer {
                    name: name.to_owned(),
                    reason: format!(
                        "would hold {} values, but the network has {width} {what}",
                        values.len()
                    ),
                });
            }
            check_statistics(name, values)?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            entries.push((name.to_owned(), Dtype::F64, vec![width], bytes));
        }
    }
    serialize(&entries, None)
}

/// Saves the network's weights and, if given, the [`Standardizer`] its inputs (and targets) were
/// scaled with, in one safetensors file: a model that [`load_model`] restores whole.
///
/// The standardizer is written as `F64` tensors, [`X_MEAN`] and [`X_STD`] of shape `[INPUTS]`,
/// and, if it scales the targets, [`Y_MEAN`] and [`Y_STD`] of shape `[OUTPUTS]`, next to the
/// weights (which are written as by [`save_weights`], so [`load_weights`] reads the file too).
/// A standardizer of other widths than the network's is an error
/// ([`WeightsError::Standardizer`]).
///
/// ```
/// # use symnet_macros::network;
/// # use symnet_runtime as symnet;
/// use symnet::data::{Dataset, Standardizer};
/// use symnet::io;
/// network! {
///     pub struct Price<f64> { input: 2, hidden: dense(4) -> tanh, out: dense(1), loss: mse }
/// }
/// let raw = Dataset::<f64>::new(
///     vec![50.0, 1.0, 80.0, 2.0, 120.0, 3.0, 65.0, 2.0],
///     vec![150e3, 230e3, 390e3, 180e3],
///     2,
///     1,
/// )?;
/// let scaler = Standardizer::fit_with_targets(&raw);
/// let train = scaler.transform(&raw); // features and prices of unit scale
/// let net = Price::init(3); // ... trained on `train` ...
/// # let _ = train;
///
/// let path = std::env::temp_dir().join(format!("price-{}.safetensors", std::process::id()));
/// io::save_model(&net, Some(&scaler), &path)?;
///
/// let (back, scaler_back): (Price, _) = io::load_model(&path)?;
/// let scaler_back = scaler_back.expect("saved with a standardizer");
/// // A prediction from raw features, in dollars, the same bit for bit.
/// let price = scaler_back.predict(&back, &[100.0, 2.0]);
/// assert_eq!(price, scaler.predict(&net, &[100.0, 2.0]));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save_model<N: Network>(
    net: &N,
    standardizer: Option<&Standardizer>,
    path: impl AsRef<Path>,
) -> Result<(), WeightsError> {
    write(path.as_ref(), model_to_bytes(net, standardizer)?)
}

/// A network and its standardizer (if the file has one) from the bytes of a safetensors file
/// ([`model_from_bytes_with`] with the default [`LoadOptions`]).
pub fn model_from_bytes<N: Network>(
    bytes: &[u8],
) -> Result<(N, Option<Standardizer>), WeightsError> {
    model_from_bytes_with(bytes, &LoadOptions::default())
}

/// A network and its standardizer from the bytes of a safetensors file written by
/// [`model_to_bytes`] or [`save_model`].
///
/// The weights are checked as by [`from_bytes_with`]. The standardizer is `None` if the file has
/// none of its tensors (a file of [`save_weights`]); else [`X_MEAN`] and [`X_STD`] must both be
/// there, `F64` of shape `[INPUTS]`, and [`Y_MEAN`] and [`Y_STD`] both or neither, `F64` of
/// shape `[OUTPUTS]`; every mean must be finite and every scale positive and finite (whatever
/// the options), else [`WeightsError::Standardizer`] naming the tensor.
pub fn model_from_bytes_with<N: Network>(
    bytes: &[u8],
    options: &LoadOptions,
) -> Result<(N, Option<Standardizer>), WeightsError> {
    check_layout::<N>()?;
    let dtype = dtype_of::<N::Scalar>()?;
    let st = parse(bytes)?;
    let net = read_net::<N>(&st, dtype, options)?;
    let standardizer = read_standardizer::<N>(&st)?;
    check_extra(&st, |name| {
        is_net_tensor::<N>(name) || STANDARDIZER_TENSORS.contains(&name)
    })?;
    Ok((net, standardizer))
}

/// The standardizer of a model file, if it has one, checked against the network's widths.
fn read_standardizer<N: Network>(
    st: &SafeTensors<'_>,
) -> Result<Option<Standardizer>, WeightsError> {
    let bad = |name: &str, reason: String| WeightsError::Standardizer {
        name: name.to_owned(),
        reason,
    };
    let get = |name: &str, width: usize, what: &str| {
        let Ok(t) = st.tensor(name) else {
            return Ok(None);
        };
        if t.dtype() != Dtype::F64 {
            return Err(bad(
                name,
                format!(
                    "has dtype {}, but a standardizer's statistics are F64",
                    t.dtype()
                ),
            ));
        }
        if t.shape() != [width] {
            return Err(bad(
                name,
                format!(
                    "has shape {:?}, but the network has {width} {what} (shape [{width}] expected)",
                    t.shape()
                ),
            ));
        }
        let values = float_values(&t).unwrap_or_default();
        check_statistics(name, &values)?;
        Ok(Some(values))
    };
    let pair = |mean: &str, std: &str, width: usize, what: &str| match (
        get(mean, width, what)?,
        get(std, width, what)?,
    ) {
        (Some(m), Some(s)) => Ok(Some((m, s))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad(std, format!("is missing, but `{mean}` is there"))),
        (None, Some(_)) => Err(bad(mean, format!("is missing, but `{std}` is there"))),
    };
    let x = pair(X_MEAN, X_STD, N::INPUTS, "inputs")?;
    let y = pair(Y_MEAN, Y_STD, N::OUTPUTS, "outputs")?;
    let invalid =
        |name: &'static str| move |e: crate::data::DataError| bad(name, format!("is invalid: {e}"));
    match (x, y) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(bad(
            X_MEAN,
            format!("is missing, but the target statistics `{Y_MEAN}` and `{Y_STD}` are there"),
        )),
        (Some((mean, std)), y) => {
            let mut s = Standardizer::new(mean, std).map_err(invalid(X_MEAN))?;
            if let Some((mean, std)) = y {
                s = s.with_targets(mean, std).map_err(invalid(Y_MEAN))?;
            }
            Ok(Some(s))
        }
    }
}

/// Loads a network and its standardizer (if the file has one) from a safetensors file
/// ([`load_model_with`] with the default [`LoadOptions`]); see [`save_model`].
pub fn load_model<N: Network>(
    path: impl AsRef<Path>,
) -> Result<(N, Option<Standardizer>), WeightsError> {
    load_model_with(path, &LoadOptions::default())
}

/// Loads a network and its standardizer (if the file has one) from a safetensors file, checked
/// as by [`model_from_bytes_with`]; a file larger than a model file of the network can be is
/// refused without reading it all ([`WeightsError::TooLarge`]).
pub fn load_model_with<N: Network>(
    path: impl AsRef<Path>,
    options: &LoadOptions,
) -> Result<(N, Option<Standardizer>), WeightsError> {
    let path = path.as_ref();
    let stats = 16 * (N::INPUTS as u64 + N::OUTPUTS as u64);
    let bytes = read_at_most(path, weights_limit::<N>() + stats)?;
    model_from_bytes_with(&bytes, options)
}

// ---------------------------------------------------------------------------------------------
// PyTorch state dicts.

/// The network's layers: the `<layer>` of each `<layer>.w`, `<layer>.b` pair of tensors.
fn layers<N: Network>() -> Result<Vec<&'static str>, WeightsError> {
    let tensors = N::tensors();
    let bad = || {
        WeightsError::TorchNames(
            "the network's tensors are not pairs of `<layer>.w` and `<layer>.b`".into(),
        )
    };
    if tensors.len() % 2 != 0 {
        return Err(bad());
    }
    tensors
        .chunks_exact(2)
        .map(|pair| {
            let layer = pair[0].0.strip_suffix(".w").ok_or_else(bad)?;
            if pair[1].0.strip_suffix(".b") != Some(layer) {
                return Err(bad());
            }
            Ok(layer)
        })
        .collect()
}

/// `<module>.<suffix>`, or `<suffix>` for the empty module.
fn torch_name(module: &str, suffix: &str) -> String {
    if module.is_empty() {
        suffix.to_owned()
    } else {
        format!("{module}.{suffix}")
    }
}

/// A list of names for a message: the first 8, each cut after 64 bytes, in backquotes.
fn quoted(names: &[impl AsRef<str>]) -> String {
    let mut shown: Vec<String> = names
        .iter()
        .take(SHOWN_NAMES)
        .map(|n| format!("`{}`", excerpt(n.as_ref(), EXCERPT_BYTES)))
        .collect();
    if names.len() > SHOWN_NAMES {
        shown.push(format!("and {} more", names.len() - SHOWN_NAMES));
    }
    shown.join(", ")
}

/// The PyTorch module of each layer of the network, from a name map.
fn mapped_modules<N: Network>(map: &[(&str, &str)]) -> Result<Vec<String>, WeightsError> {
    let layers = layers::<N>()?;
    let err = |m: String| Err(WeightsError::TorchNames(m));
    for (layer, _) in map {
        if !layers.contains(layer) {
            return err(format!(
                "the name map has layer `{}`, which the network does not have (its layers: {})",
                excerpt(layer, EXCERPT_BYTES),
                quoted(&layers)
            ));
        }
    }
    let mut modules: Vec<String> = Vec::with_capacity(layers.len());
    for layer in &layers {
        let mut entries = map.iter().filter(|(l, _)| l == layer);
        let Some((_, module)) = entries.next() else {
            return err(format!("the name map has no entry for layer `{layer}`"));
        };
        if entries.next().is_some() {
            return err(format!("the name map has layer `{layer}` more than once"));
        }
        if modules.iter().any(|m| m == module) {
            return err(format!(
                "the name map gives module `{}` to more than one layer",
                excerpt(module, EXCERPT_BYTES)
            ));
        }
        modules.push((*module).to_owned());
    }
    Ok(modules)
}

/// An `nn.Sequential` index: decimal digits without a leading zero (but `0`).
fn sequential_index(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

/// The PyTorch module of each layer of the network, from the `<prefix><index>.weight` and
/// `<prefix><index>.bias` names of the file, in the order of the indices.
fn sequential_modules<N: Network>(st: &SafeTensors<'_>) -> Result<Vec<String>, WeightsError> {
    let layers = layers::<N>()?;
    let mut names = st.names();
    names.sort_unstable();
    let mut prefix: Option<(&str, &str)> = None; // (prefix, the first name with it)
    let mut indices = BTreeMap::new();
    for name in names {
        let Some(path) = name
            .strip_suffix(".weight")
            .or_else(|| name.strip_suffix(".bias"))
        else {
            continue; // not a parameter: left to the check of extra tensors
        };
        let (p, index) = match path.rfind('.') {
            Some(dot) => path.split_at(dot + 1),
            None => ("", path),
        };
        let Some(index) = sequential_index(index) else {
            continue;
        };
        match prefix {
            None => prefix = Some((p, name)),
            Some((q, first)) if q != p => {
                return Err(WeightsError::TorchNames(format!(
                    "`{}` and `{}` are not in the same nn.Sequential (prefixes `{}` and `{}`); name the modules with TorchNames::Map",
                    excerpt(first, EXCERPT_BYTES),
                    excerpt(name, EXCERPT_BYTES),
                    excerpt(q, EXCERPT_BYTES),
                    excerpt(p, EXCERPT_BYTES),
                )));
            }
            Some(_) => {}
        }
        indices.insert(index, format!("{p}{index}"));
    }
    let modules: Vec<String> = indices.into_values().collect();
    if modules.len() != layers.len() {
        let found = if modules.is_empty() {
            "no tensors named `<index>.weight` or `<index>.bias` (an nn.Sequential's)".to_owned()
        } else {
            format!(
                "{} module(s) with a `weight` or `bias`, {}",
                modules.len(),
                quoted(&modules)
            )
        };
        return Err(WeightsError::TorchNames(format!(
            "the file has {found}, but the network has {} layer(s), {}; with TorchNames::Sequential every such module must be one of the network's layers (a Linear)",
            layers.len(),
            quoted(&layers)
        )));
    }
    Ok(modules)
}

/// A network from the bytes of a safetensors file of a PyTorch `state_dict`
/// ([`safetensors.torch.save_file`](https://huggingface.co/docs/safetensors/api/torch)), its
/// modules matched with the network's layers by `names` (see [`TorchNames`]).
///
/// Each layer takes its `w` from `<module>.weight` (shape `[OUT, IN]`, PyTorch's
/// `[out_features, in_features]`) and its `b` from `<module>.bias` (`[OUT]`); a layer without
/// either is an error ([`WeightsError::TorchMissing`], naming the PyTorch tensor and the
/// network's), as is another shape ([`WeightsError::TorchShape`]). Unlike [`from_bytes_with`],
/// the dtype need not be the network's: `F32`, `F64`, `F16` and `BF16` are converted to the
/// network's scalar (rounding to nearest; an `F64` value beyond the range of an `f32` network
/// becomes infinite, which is an error unless `options.allow_non_finite`); any other dtype is a
/// [`WeightsError::TorchDtype`]. Every tensor of the file must be loaded: any other (a
/// BatchNorm's running statistics, a `num_batches_tracked`) is a
/// [`WeightsError::ExtraTensors`], so a network is never silently given part of a model; drop
/// such tensors from the `state_dict` before saving it if they are not needed. The file's
/// header is checked as by [`from_bytes_with`] (duplicate names, truncation).
///
/// ```
/// # use symnet_macros::network;
/// # use symnet_runtime as symnet;
/// use symnet::io::{self, LoadOptions, TorchNames};
/// network! {
///     pub struct Net<f32> { input: 4, hidden: dense(8) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
/// }
/// // In Python:
/// //   model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
/// //   safetensors.torch.save_file(model.state_dict(), "model.safetensors")
/// // gives tensors `0.weight`, `0.bias`, `2.weight`, `2.bias`, as does:
/// let bytes = io::to_torch_bytes(&Net::init(1), &TorchNames::Sequential)?;
///
/// let net: Net = io::from_torch_bytes(&bytes, &TorchNames::Sequential, &LoadOptions::default())?;
/// assert_eq!(net.params(), Net::init(1).params());
///
/// // A module with named layers, `self.fc1 = nn.Linear(4, 8)` and `self.fc2 = nn.Linear(8, 3)`:
/// let map = [("hidden", "fc1"), ("out", "fc2")];
/// let bytes = io::to_torch_bytes(&net, &TorchNames::Map(&map))?;
/// let back: Net = io::from_torch_bytes(&bytes, &TorchNames::Map(&map), &LoadOptions::default())?;
/// assert_eq!(back.params(), net.params());
///
/// // The wrong network is an error naming both sides.
/// network! {
///     #[derive(Debug)]
///     pub struct Wide<f32> { input: 4, hidden: dense(16) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
/// }
/// let bytes = io::to_torch_bytes(&Net::init(1), &TorchNames::Sequential)?;
/// let e = io::from_torch_bytes::<Wide>(&bytes, &TorchNames::Sequential, &LoadOptions::default())
///     .unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "tensor `0.weight` (for the network's `hidden.w`) has shape [8, 4], but the network expects [16, 4]"
/// );
/// # Ok::<(), symnet::io::WeightsError>(())
/// ```
pub fn from_torch_bytes<N: Network>(
    bytes: &[u8],
    names: &TorchNames<'_>,
    options: &LoadOptions,
) -> Result<N, WeightsError> {
    check_layout::<N>()?;
    dtype_of::<N::Scalar>()?;
    let st = parse(bytes)?;
    let modules = match names {
        TorchNames::Sequential => sequential_modules::<N>(&st)?,
        TorchNames::Map(map) => mapped_modules::<N>(map)?,
    };
    let torch: Vec<String> = modules
        .iter()
        .flat_map(|m| [torch_name(m, "weight"), torch_name(m, "bias")])
        .collect();
    let mut net = N::zeros();
    let mut offset = 0;
    for ((tensor, shape), torch) in N::tensors().iter().zip(&torch) {
        let t = st.tensor(torch).map_err(|_| WeightsError::TorchMissing {
            torch: excerpt(torch, EXCERPT_BYTES),
            tensor: (*tensor).to_owned(),
        })?;
        if !matches!(
            t.dtype(),
            Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16
        ) {
            return Err(WeightsError::TorchDtype {
                torch: excerpt(torch, EXCERPT_BYTES),
                tensor: (*tensor).to_owned(),
                found: format!("{}", t.dtype()),
            });
        }
        if t.shape() != *shape {
            return Err(WeightsError::TorchShape {
                torch: excerpt(torch, EXCERPT_BYTES),
                tensor: (*tensor).to_owned(),
                expected: shape.to_vec(),
                found: t.shape().to_vec(),
            });
        }
        // One of the dtypes `float_values` converts, as checked.
        let values = float_values(&t).unwrap_or_default();
        store(&mut net, offset, &values, torch, options)?;
        offset += values.len();
    }
    check_extra(&st, |name| torch.iter().any(|t| t == name))?;
    Ok(net)
}

/// Loads a network from a safetensors file of a PyTorch `state_dict`, checked and converted as
/// by [`from_torch_bytes`]; a file larger than the network's parameters as `F64` (plus a header
/// of at most 100 MB) is refused without reading it all ([`WeightsError::TooLarge`]).
///
/// ```no_run
/// # use symnet_macros::network;
/// # use symnet_runtime as symnet;
/// use symnet::io::{self, LoadOptions, TorchNames};
/// network! {
///     pub struct Net<f32> { input: 4, hidden: dense(8) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
/// }
/// // model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), saved with
/// // safetensors.torch.save_file(model.state_dict(), "model.safetensors")
/// let net: Net = io::load_torch("model.safetensors", &TorchNames::Sequential, &LoadOptions::default())?;
/// # Ok::<(), symnet::io::WeightsError>(())
/// ```
pub fn load_torch<N: Network>(
    path: impl AsRef<Path>,
    names: &TorchNames<'_>,
    options: &LoadOptions,
) -> Result<N, WeightsError> {
    let bytes = read_at_most(path.as_ref(), weights_limit::<N>())?;
    from_torch_bytes(&bytes, names, options)
}

/// The network's weights as the bytes of a safetensors file of a PyTorch `state_dict`, named
/// after `names` (see [`TorchNames`]: with [`TorchNames::Sequential`] the layers are modules
/// `0`, `2`, `4`, ...).
///
/// Each layer is written as `<module>.weight` (`[OUT, IN]`, PyTorch's
/// `[out_features, in_features]`) and `<module>.bias`, in the network's dtype (`F32` or `F64`;
/// `load_state_dict` converts an `F64` file into a `float32` model), with the metadata
/// `{"format": "pt"}`. The file loads in Python with
/// `model.load_state_dict(safetensors.torch.load_file(path))`, and back with
/// [`from_torch_bytes`].
pub fn to_torch_bytes<N: Network>(
    net: &N,
    names: &TorchNames<'_>,
) -> Result<Vec<u8>, WeightsError> {
    let modules = match names {
        TorchNames::Sequential => (0..layers::<N>()?.len())
            .map(|k| (2 * k).to_string())
            .collect(),
        TorchNames::Map(map) => mapped_modules::<N>(map)?,
    };
    let entries = net_entries(net, |k, _| {
        torch_name(&modules[k / 2], if k % 2 == 0 { "weight" } else { "bias" })
    })?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    serialize(&entries, Some(metadata))
}

/// Saves the network's weights as a PyTorch `state_dict` in a safetensors file (see
/// [`to_torch_bytes`]).
///
/// ```
/// # use symnet_macros::network;
/// # use symnet_runtime as symnet;
/// use symnet::io::{self, LoadOptions, TorchNames};
/// network! {
///     pub struct Net<f32> { input: 4, hidden: dense(8) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
/// }
/// let net = Net::init(7);
/// let path = std::env::temp_dir().join(format!("torch-{}.safetensors", std::process::id()));
/// // For nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)):
/// io::save_torch(&net, &path, &TorchNames::Sequential)?;
/// let back: Net = io::load_torch(&path, &TorchNames::Sequential, &LoadOptions::default())?;
/// assert_eq!(back.params(), net.params());
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), symnet::io::WeightsError>(())
/// ```
pub fn save_torch<N: Network>(
    net: &N,
    path: impl AsRef<Path>,
    names: &TorchNames<'_>,
) -> Result<(), WeightsError> {
    write(path.as_ref(), to_torch_bytes(net, names)?)
}

/// The bytes of the file at `path` if it has at most `limit` of them.
fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, WeightsError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(|source| WeightsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(WeightsError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dense, SplitMix64};

    /// A hand-written two-layer network (`hidden: Dense<3, 2>`, `out: Dense<2, 1>`), just enough
    /// of `Network` for weights files.
    #[repr(C)]
    #[derive(Clone, Debug, PartialEq)]
    struct Two<T> {
        hidden: Dense<T, 3, 2>,
        out: Dense<T, 2, 1>,
    }

    unsafe impl<T: Scalar> crate::__private::Flat<T> for Two<T> {
        const N: usize = 11;
    }

    impl<T: Scalar> Network for Two<T> {
        type Scalar = T;
        const INPUTS: usize = 3;
        const OUTPUTS: usize = 1;
        const PARAMS: usize = 11;
        fn zeros() -> Self {
            Self {
                hidden: Dense::zeros(),
                out: Dense::zeros(),
            }
        }
        fn init(seed: u64) -> Self {
            let mut n = Self::zeros();
            let mut r = SplitMix64::new(seed);
            for p in n.params_mut() {
                *p = T::from_f64(r.uniform(-1.0, 1.0));
            }
            n
        }
        fn params(&self) -> &[T] {
            crate::__private::Flat::flat(self)
        }
        fn params_mut(&mut self) -> &mut [T] {
            crate::__private::Flat::flat_mut(self)
        }
        fn tensors() -> &'static [(&'static str, &'static [usize])] {
            &[
                ("hidden.w", &[2, 3]),
                ("hidden.b", &[2]),
                ("out.w", &[1, 2]),
                ("out.b", &[1]),
            ]
        }
        fn forward_slice(&self, _: &[T], _: &mut [T]) {}
        fn loss_slice(&self, _: &[T], _: &[T]) -> T {
            T::ZERO
        }
        fn backward_slice(&self, _: &[T], _: &[T], _: T, _: &mut Self) -> T {
            T::ZERO
        }
    }

    /// The same network with another hidden width.
    #[derive(Debug)]
    struct Wide(Vec<f64>);
    impl Network for Wide {
        type Scalar = f64;
        const INPUTS: usize = 3;
        const OUTPUTS: usize = 1;
        const PARAMS: usize = 21;
        fn zeros() -> Self {
            Self(vec![0.0; 21])
        }
        fn init(_: u64) -> Self {
            Self::zeros()
        }
        fn params(&self) -> &[f64] {
            &self.0
        }
        fn params_mut(&mut self) -> &mut [f64] {
            &mut self.0
        }
        fn tensors() -> &'static [(&'static str, &'static [usize])] {
            &[
                ("hidden.w", &[4, 3]),
                ("hidden.b", &[4]),
                ("out.w", &[1, 4]),
                ("out.b", &[1]),
            ]
        }
        fn forward_slice(&self, _: &[f64], _: &mut [f64]) {}
        fn loss_slice(&self, _: &[f64], _: &[f64]) -> f64 {
            0.0
        }
        fn backward_slice(&self, _: &[f64], _: &[f64], _: f64, _: &mut Self) -> f64 {
            0.0
        }
    }

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "symnet-io-{tag}-{}.safetensors",
            std::process::id()
        ))
    }

    /// Builds a safetensors file by hand from the format spec: an 8-byte little-endian header
    /// length, a JSON header, then raw little-endian data.
    fn hand_made(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
        let mut header = String::from("{");
        let mut data = Vec::new();
        for (k, (name, dtype, shape, bytes)) in tensors.iter().enumerate() {
            if k > 0 {
                header.push(',');
            }
            let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
            header.push_str(&format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                shape.join(","),
                data.len(),
                data.len() + bytes.len()
            ));
            data.extend_from_slice(bytes);
        }
        header.push('}');
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header.as_bytes());
        file.extend(data);
        file
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn round_trip_through_a_file_f32_and_f64() {
        let net = Two::<f32>::init(3);
        let path = temp_path("f32");
        save_weights(&net, &path).unwrap();
        let back: Two<f32> = load_weights(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, net);

        let net = Two::<f64>::init(4);
        let back: Two<f64> = from_bytes(&to_bytes(&net).unwrap()).unwrap();
        assert_eq!(back, net);
        // The file is readable by the safetensors crate, names and shapes as declared.
        let bytes = to_bytes(&net).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("hidden.w").unwrap().shape(), &[2, 3]);
        assert_eq!(st.tensor("out.b").unwrap().dtype(), Dtype::F64);
    }

    #[test]
    fn loads_a_hand_made_file() {
        let file = hand_made(&[
            ("out.b", "F32", &[1], f32s(&[10.0])),
            (
                "hidden.w",
                "F32",
                &[2, 3],
                f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            ),
            ("hidden.b", "F32", &[2], f32s(&[7.0, 8.0])),
            ("out.w", "F32", &[1, 2], f32s(&[9.0, 9.5])),
        ]);
        let net: Two<f32> = from_bytes(&file).unwrap();
        assert_eq!(net.hidden.w, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        assert_eq!(net.hidden.b, [7.0, 8.0]);
        assert_eq!(net.out.w, [[9.0, 9.5]]);
        assert_eq!(net.out.b, [10.0]);
        let path = temp_path("hand");
        std::fs::write(&path, &file).unwrap();
        let from_file: Two<f32> = load_weights(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file, net);
    }

    #[test]
    fn a_file_for_another_network_is_rejected() {
        let wide = to_bytes(&Wide::zeros()).unwrap();
        let e = from_bytes::<Two<f64>>(&wide).unwrap_err();
        assert!(
            matches!(&e, WeightsError::WrongShape { name, expected, found }
                if name == "hidden.w" && expected == &[2, 3] && found == &[4, 3]),
            "{e:?}"
        );
        assert!(e.to_string().contains("hidden.w"));

        // Missing tensor.
        let file = hand_made(&[
            ("hidden.w", "F64", &[2, 3], vec![0; 48]),
            ("hidden.b", "F64", &[2], vec![0; 16]),
            ("out.w", "F64", &[1, 2], vec![0; 16]),
        ]);
        let e = from_bytes::<Two<f64>>(&file).unwrap_err();
        assert!(
            matches!(&e, WeightsError::MissingTensor { name } if name == "out.b"),
            "{e:?}"
        );

        // Extra tensors.
        let file = hand_made(&[
            ("hidden.w", "F64", &[2, 3], vec![0; 48]),
            ("hidden.b", "F64", &[2], vec![0; 16]),
            ("out.w", "F64", &[1, 2], vec![0; 16]),
            ("out.b", "F64", &[1], vec![0; 8]),
            ("zz.w", "F64", &[1], vec![0; 8]),
            ("aa.b", "F64", &[1], vec![0; 8]),
        ]);
        let e = from_bytes::<Two<f64>>(&file).unwrap_err();
        assert!(
            matches!(&e, WeightsError::ExtraTensors { names } if names == &["aa.b", "zz.w"]),
            "{e:?}"
        );
    }

    #[test]
    fn a_wrong_dtype_is_rejected() {
        let bytes = to_bytes(&Two::<f32>::init(1)).unwrap();
        let e = from_bytes::<Two<f64>>(&bytes).unwrap_err();
        assert!(
            matches!(&e, WeightsError::WrongDtype { expected, found, .. } if expected == "F64" && found == "F32"),
            "{e:?}"
        );
        let file = hand_made(&[("hidden.w", "I32", &[2, 3], vec![0; 24])]);
        assert!(matches!(
            from_bytes::<Two<f32>>(&file),
            Err(WeightsError::WrongDtype { .. })
        ));
    }

    #[test]
    fn truncated_files_are_rejected() {
        let bytes = to_bytes(&Two::<f64>::init(1)).unwrap();
        for cut in [0, 5, 8, 20, bytes.len() - 100, bytes.len() - 1] {
            let e = from_bytes::<Two<f64>>(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(e, WeightsError::Truncated(_)),
                "cut at {cut}: {e:?}"
            );
        }
        let path = temp_path("trunc");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_weights::<Two<f64>>(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(e, WeightsError::Truncated(_)), "{e:?}");
    }

    /// A valid file of `Two<f32>` whose header (JSON text) is `header`, with the data of
    /// `hidden.w`, `hidden.b`, `out.w`, `out.b` in that order (44 bytes).
    fn with_header(header: &str) -> Vec<u8> {
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(header.as_bytes());
        file.extend(f32s(&[
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.5, 10.0,
        ]));
        file
    }

    #[test]
    fn a_tensor_named_twice_is_rejected() {
        let t = |name: &str, s: usize, e: usize, shape: &str| {
            format!("\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[{s},{e}]}}")
        };
        let header = format!(
            "{{{},{},{},{},{}}}",
            t("hidden.w", 0, 24, "[2,3]"),
            t("hidden.b", 24, 32, "[2]"),
            t("out.w", 32, 40, "[1,2]"),
            t("out.b", 40, 44, "[1]"),
            t("out.b", 40, 44, "[1]"),
        );
        let file = with_header(&header);
        // The safetensors crate alone accepts it (the last `out.b` wins).
        assert_eq!(SafeTensors::deserialize(&file).unwrap().len(), 4);
        let e = from_bytes::<Two<f32>>(&file).unwrap_err();
        assert!(
            matches!(&e, WeightsError::DuplicateTensor { name } if name == "out.b"),
            "{e:?}"
        );
        assert!(e.to_string().contains("`out.b` more than once"), "{e}");
        // The array form of a tensor, which the safetensors crate accepts too.
        let arr = |name: &str, s: usize, e: usize, shape: &str| {
            format!("\"{name}\":[\"F32\",{shape},[{s},{e}]]")
        };
        let mut tensors = vec![
            arr("hidden.w", 0, 24, "[2,3]"),
            arr("hidden.b", 24, 32, "[2]"),
            arr("out.w", 32, 40, "[1,2]"),
            arr("out.b", 40, 44, "[1]"),
        ];
        let net: Two<f32> =
            from_bytes(&with_header(&format!("{{{}}}", tensors.join(",")))).unwrap();
        assert_eq!((net.hidden.w[1][2], net.out.b[0]), (6.0, 10.0));
        tensors.insert(1, arr("out.w", 32, 40, "[1,2]"));
        let file = with_header(&format!("{{{}}}", tensors.join(",")));
        assert!(SafeTensors::deserialize(&file).is_ok());
        let e = from_bytes::<Two<f32>>(&file).unwrap_err();
        assert!(
            matches!(&e, WeightsError::DuplicateTensor { name } if name == "out.w"),
            "{e:?}"
        );
    }

    #[test]
    fn non_finite_weights_are_refused_unless_allowed() {
        let allow = LoadOptions {
            allow_non_finite: true,
        };
        assert!(!LoadOptions::default().allow_non_finite);
        for (bad, name, index) in [(f32::NAN, "hidden.w", 4), (f32::INFINITY, "out.b", 0)] {
            let mut net = Two::<f32>::init(2);
            let i = if name == "out.b" { 10 } else { index };
            net.params_mut()[i] = bad;
            let bytes = to_bytes(&net).unwrap();
            let e = from_bytes::<Two<f32>>(&bytes).unwrap_err();
            assert!(
                matches!(&e, WeightsError::NonFinite { name: n, index: k } if n == name && *k == index),
                "{e:?}"
            );
            assert!(e.to_string().contains("allow_non_finite"), "{e}");
            let back: Two<f32> = from_bytes_with(&bytes, &allow).unwrap();
            assert_eq!(back.params()[i].to_bits(), bad.to_bits());
            // Through a file too.
            let path = temp_path("nonfinite");
            std::fs::write(&path, &bytes).unwrap();
            let e = load_weights::<Two<f32>>(&path).unwrap_err();
            let back = load_weights_with::<Two<f32>>(&path, &allow);
            std::fs::remove_file(&path).unwrap();
            assert!(matches!(e, WeightsError::NonFinite { .. }), "{e:?}");
            assert_eq!(back.unwrap().params()[i].to_bits(), bad.to_bits());
        }
        let mut net = Two::<f64>::init(2);
        net.params_mut()[7] = f64::NEG_INFINITY; // hidden.b[1]
        let e = from_bytes::<Two<f64>>(&to_bytes(&net).unwrap()).unwrap_err();
        assert!(
            matches!(&e, WeightsError::NonFinite { name, index: 1 } if name == "hidden.b"),
            "{e:?}"
        );
    }

    #[test]
    fn extreme_finite_values_load_exactly_in_their_own_dtype() {
        let mut net = Two::<f32>::zeros();
        let v32 = [
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            -0.0,
            f32::EPSILON,
        ];
        net.params_mut()[..6].copy_from_slice(&v32);
        let back: Two<f32> = from_bytes(&to_bytes(&net).unwrap()).unwrap();
        for (a, b) in back.params().iter().zip(net.params()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        let mut net = Two::<f64>::zeros();
        let v64 = [f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, -0.0, 1e300];
        net.params_mut()[..6].copy_from_slice(&v64);
        let bytes = to_bytes(&net).unwrap();
        let back: Two<f64> = from_bytes(&bytes).unwrap();
        for (a, b) in back.params().iter().zip(net.params()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        // Dtypes are not converted: an F64 file for an f32 network is a WrongDtype error.
        assert!(matches!(
            from_bytes::<Two<f32>>(&bytes),
            Err(WeightsError::WrongDtype { .. })
        ));
    }

    #[test]
    fn offsets_far_beyond_the_data_are_errors_not_overflows() {
        // Tensors chained up to usize::MAX: the safetensors crate would add the header length
        // to the end of the data and overflow.
        let step = 1u64 << 60;
        let mut parts = Vec::new();
        for k in 0..16u64 {
            let (s, e) = (k * step, if k == 15 { u64::MAX } else { (k + 1) * step });
            parts.push(format!(
                "\"t{k}\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[{s},{e}]}}",
                e - s
            ));
        }
        let file = with_header(&format!("{{{}}}", parts.join(",")));
        let e = from_bytes::<Two<f32>>(&file).unwrap_err();
        assert!(
            matches!(&e, WeightsError::Truncated(m) if m.contains("`t15` ends at byte 18446744073709551615")),
            "{e:?}"
        );
        // In array form too.
        let file = with_header("{\"out.b\":[\"F32\",[1],[0,18446744073709551615]]}");
        assert!(matches!(
            from_bytes::<Two<f32>>(&file),
            Err(WeightsError::Truncated(_))
        ));
    }

    #[test]
    fn messages_quoting_the_file_are_short() {
        // A huge dtype string: the parser's message quotes it.
        let dtype = "X".repeat(1 << 20);
        let file = with_header(&format!(
            "{{\"out.b\":{{\"dtype\":\"{dtype}\",\"shape\":[1],\"data_offsets\":[0,4]}}}}"
        ));
        let e = from_bytes::<Two<f32>>(&file).unwrap_err();
        assert!(matches!(e, WeightsError::Invalid(_)), "{e:?}");
        assert!(e.to_string().len() < 700, "{} bytes", e.to_string().len());
        // Many extra tensors with huge names.
        let mut tensors: Vec<(String, &str, &[usize], Vec<u8>)> = vec![
            ("hidden.w".into(), "F32", &[2, 3], vec![0; 24]),
            ("hidden.b".into(), "F32", &[2], vec![0; 8]),
            ("out.w".into(), "F32", &[1, 2], vec![0; 8]),
            ("out.b".into(), "F32", &[1], vec![0; 4]),
        ];
        for k in 0..20 {
            tensors.push((
                format!("{k:02}{}", "n".repeat(100_000)),
                "F32",
                &[1],
                vec![0; 4],
            ));
        }
        let tensors: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.as_str(), *d, *s, b.clone()))
            .collect();
        let e = from_bytes::<Two<f32>>(&hand_made(&tensors)).unwrap_err();
        let WeightsError::ExtraTensors { names } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(names.len(), 20);
        let msg = e.to_string();
        assert!(msg.len() < 1000 && msg.ends_with("and 12 more"), "{msg}");
        // A duplicate huge name is cut as well.
        let name = "d".repeat(1 << 20);
        let header = format!("{{\"{name}\":[\"F32\",[1],[0,4]],\"{name}\":[\"F32\",[1],[4,8]]}}");
        let e = from_bytes::<Two<f32>>(&with_header(&header)).unwrap_err();
        assert!(
            matches!(&e, WeightsError::DuplicateTensor { name } if name.len() < 100),
            "{e:?}"
        );
    }

    #[test]
    fn files_larger_than_the_network_can_be_are_not_read_whole() {
        let path = temp_path("large");
        std::fs::write(&path, vec![0u8; 1000]).unwrap();
        let small = read_at_most(&path, 999);
        let exact = read_at_most(&path, 1000);
        std::fs::remove_file(&path).unwrap();
        let e = small.unwrap_err();
        assert!(
            matches!(e, WeightsError::TooLarge { limit: 999, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("larger than 999 bytes"));
        assert_eq!(exact.unwrap().len(), 1000);
    }

    #[test]
    fn garbage_and_missing_files_are_rejected() {
        let mut r = SplitMix64::new(1);
        for len in [8, 64, 1000] {
            let garbage: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
            let e = from_bytes::<Two<f32>>(&garbage).unwrap_err();
            assert!(
                matches!(e, WeightsError::Invalid(_) | WeightsError::Truncated(_)),
                "{e:?}"
            );
        }
        // A plausible length followed by bytes that are not JSON.
        let mut bad = 16u64.to_le_bytes().to_vec();
        bad.extend(b"not json at all!");
        assert!(matches!(
            from_bytes::<Two<f32>>(&bad),
            Err(WeightsError::Invalid(_))
        ));
        // Offsets that overlap.
        let mut file = hand_made(&[("hidden.w", "F32", &[2, 3], vec![0; 24])]);
        let text = String::from_utf8_lossy(&file).replace("[0,24]", "[4,28]");
        file = text.into_bytes();
        assert!(matches!(
            from_bytes::<Two<f32>>(&file),
            Err(WeightsError::Invalid(_) | WeightsError::Truncated(_))
        ));

        let e = load_weights::<Two<f32>>(temp_path("does-not-exist")).unwrap_err();
        assert!(matches!(e, WeightsError::Io { .. }));
        assert!(e.to_string().contains("does-not-exist"));
    }

    fn f64s(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The tensors of a `Two<f32>` with the given extra tensors, as a hand-made file.
    fn two_with(extra: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
        let mut tensors: Vec<(&str, &str, &[usize], Vec<u8>)> = vec![
            ("hidden.w", "F32", &[2, 3], f32s(&[1.0; 6])),
            ("hidden.b", "F32", &[2], f32s(&[2.0; 2])),
            ("out.w", "F32", &[1, 2], f32s(&[3.0; 2])),
            ("out.b", "F32", &[1], f32s(&[4.0])),
        ];
        tensors.extend(extra.iter().cloned());
        hand_made(&tensors)
    }

    #[test]
    fn a_model_round_trips_with_its_standardizer() {
        let x = Standardizer::new(vec![1.5, -2.0, 1e-300], vec![0.1, 3.0, 7e200]).unwrap();
        let xy = x.clone().with_targets(vec![-4.25], vec![1e-3]).unwrap();
        let net = Two::<f32>::init(5);
        for s in [None, Some(&x), Some(&xy)] {
            let bytes = model_to_bytes(&net, s).unwrap();
            let (back, s_back) = model_from_bytes::<Two<f32>>(&bytes).unwrap();
            assert_eq!(back, net);
            assert_eq!(s_back.as_ref(), s);
            // A model file is a weights file.
            assert_eq!(from_bytes::<Two<f32>>(&bytes).unwrap(), net);
            let st = SafeTensors::deserialize(&bytes).unwrap();
            assert_eq!(
                st.len(),
                4 + 2 * s.map_or(0, |s| 1 + s.target_mean().is_some() as usize)
            );
        }
        let st_bytes = model_to_bytes(&net, Some(&xy)).unwrap();
        let st = SafeTensors::deserialize(&st_bytes).unwrap();
        assert_eq!(st.tensor(X_STD).unwrap().dtype(), Dtype::F64);
        assert_eq!(st.tensor(X_STD).unwrap().shape(), &[3]);
        assert_eq!(st.tensor(Y_MEAN).unwrap().shape(), &[1]);
        // Through a file, f64 network.
        let net = Two::<f64>::init(6);
        let path = temp_path("model");
        save_model(&net, Some(&xy), &path).unwrap();
        let (back, s) = load_model::<Two<f64>>(&path).unwrap();
        let plain: Two<f64> = load_weights(&path).unwrap();
        save_weights(&net, &path).unwrap();
        let (_, none) = load_model::<Two<f64>>(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!((back, s), (net.clone(), Some(xy)));
        assert_eq!(plain, net);
        assert_eq!(none, None);
    }

    #[test]
    fn a_standardizer_of_other_widths_is_not_saved() {
        let net = Two::<f32>::zeros();
        let s = Standardizer::new(vec![0.0; 2], vec![1.0; 2]).unwrap();
        let e = model_to_bytes(&net, Some(&s)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "standardizer tensor `__symnet.x_mean` would hold 2 values, but the network has 3 inputs"
        );
        let s = Standardizer::new(vec![0.0; 3], vec![1.0; 3])
            .unwrap()
            .with_targets(vec![0.0; 2], vec![1.0; 2])
            .unwrap();
        let e = model_to_bytes(&net, Some(&s)).unwrap_err();
        assert!(
            matches!(&e, WeightsError::Standardizer { name, .. } if name == Y_MEAN),
            "{e:?}"
        );
    }

    #[test]
    fn bad_standardizer_tensors_are_named() {
        let ok3 = || f64s(&[0.0, 1.0, 2.0]);
        // (extra tensors, the tensor named in the error, its reason)
        type Case<'a> = (
            Vec<(&'a str, &'a str, &'a [usize], Vec<u8>)>,
            &'a str,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                vec![
                    (X_MEAN, "F32", &[3], f32s(&[0.0; 3])),
                    (X_STD, "F64", &[3], ok3()),
                ],
                X_MEAN,
                "has dtype F32, but a standardizer's statistics are F64",
            ),
            (
                vec![
                    (X_MEAN, "F64", &[3], ok3()),
                    (X_STD, "F64", &[2], f64s(&[1.0; 2])),
                ],
                X_STD,
                "has shape [2], but the network has 3 inputs",
            ),
            (
                vec![
                    (X_MEAN, "F64", &[3], ok3()),
                    (X_STD, "F64", &[3], f64s(&[1.0, 0.0, 1.0])),
                ],
                X_STD,
                "holds 0 at index 1, but a standard deviation must be positive",
            ),
            (
                vec![
                    (X_MEAN, "F64", &[3], f64s(&[0.0, 0.0, f64::NAN])),
                    (X_STD, "F64", &[3], ok3()),
                ],
                X_MEAN,
                "holds NaN at index 2, but a mean must be finite",
            ),
            (
                vec![(X_MEAN, "F64", &[3], ok3())],
                X_STD,
                "is missing, but `__symnet.x_mean` is there",
            ),
            (
                vec![
                    (Y_MEAN, "F64", &[1], f64s(&[1.0])),
                    (Y_STD, "F64", &[1], f64s(&[1.0])),
                ],
                X_MEAN,
                "is missing, but the target statistics",
            ),
            (
                vec![
                    (X_MEAN, "F64", &[3], ok3()),
                    (X_STD, "F64", &[3], f64s(&[1.0; 3])),
                    (Y_STD, "F64", &[1], f64s(&[-1.0])),
                ],
                Y_STD,
                "holds -1 at index 0",
            ),
            (
                vec![
                    (X_MEAN, "F64", &[3], ok3()),
                    (X_STD, "F64", &[3], f64s(&[1.0; 3])),
                    (Y_MEAN, "F64", &[1, 1], f64s(&[1.0])),
                    (Y_STD, "F64", &[1], f64s(&[1.0])),
                ],
                Y_MEAN,
                "has shape [1, 1], but the network has 1 outputs",
            ),
        ];
        for (extra, name, reason) in cases {
            let file = two_with(&extra);
            let e = model_from_bytes::<Two<f32>>(&file).unwrap_err();
            assert!(
                matches!(&e, WeightsError::Standardizer { name: n, .. } if n == name),
                "{name}: {e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&format!("`{name}` {reason}")), "{msg}");
            // Plain weights loading ignores them.
            assert!(from_bytes::<Two<f32>>(&file).is_ok());
        }
        // Other tensors are still extra, for both.
        let file = two_with(&[("__symnet.other", "F64", &[1], f64s(&[1.0]))]);
        for e in [
            model_from_bytes::<Two<f32>>(&file).unwrap_err(),
            from_bytes::<Two<f32>>(&file).unwrap_err(),
        ] {
            assert!(
                matches!(&e, WeightsError::ExtraTensors { names } if names == &["__symnet.other"]),
                "{e:?}"
            );
        }
    }

    #[test]
    fn half_precision_values_convert_exactly() {
        for (h, v) in [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0400, 6.103_515_6e-5),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ] {
            assert_eq!(f16_to_f32(h), v, "{h:#06x}");
        }
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert!(f16_to_f32(0x7e00).is_nan() && f16_to_f32(0xfe01).is_nan());
        // Every positive finite value, in increasing order, each step the spacing of its binade.
        let mut last = 0.0f32;
        for h in 1..0x7c00u16 {
            let v = f16_to_f32(h);
            let step = if h <= 0x0400 {
                2f32.powi(-24)
            } else {
                2f32.powi(((h - 1) >> 10) as i32 - 25)
            };
            assert_eq!(v - last, step, "{h:#06x}");
            assert_eq!(f16_to_f32(h | 0x8000), -v);
            last = v;
        }
    }

    #[test]
    fn torch_tensors_of_every_float_dtype_load() {
        let w: [f32; 6] = [1.0, -2.0, 0.5, 0.25, 3.0, -0.125];
        let half = |v: &[f32], f: fn(f32) -> u16| -> Vec<u8> {
            v.iter().flat_map(|x| f(*x).to_le_bytes()).collect()
        };
        // These values are exact in every dtype; f16 and bf16 encodings by hand.
        let f16 = |x: f32| match x {
            1.0 => 0x3c00,
            -2.0 => 0xc000,
            0.5 => 0x3800,
            0.25 => 0x3400,
            3.0 => 0x4200,
            -0.125 => 0xb000,
            _ => unreachable!(),
        };
        let bf16 = |x: f32| (x.to_bits() >> 16) as u16;
        let file = hand_made(&[
            ("0.weight", "F16", &[2, 3], half(&w, f16)),
            ("0.bias", "BF16", &[2], half(&w[..2], bf16)),
            ("2.weight", "F64", &[1, 2], f64s(&[0.25, 3.0])),
            ("2.bias", "F32", &[1], f32s(&[-0.125])),
        ]);
        let opts = LoadOptions::default();
        let net: Two<f64> = from_torch_bytes(&file, &TorchNames::Sequential, &opts).unwrap();
        assert_eq!(net.hidden.w, [[1.0, -2.0, 0.5], [0.25, 3.0, -0.125]]);
        assert_eq!(net.hidden.b, [1.0, -2.0]);
        assert_eq!((net.out.w, net.out.b), ([[0.25, 3.0]], [-0.125]));
        // An F64 value beyond f32 is infinite in an f32 network: an error unless allowed.
        let file = hand_made(&[
            ("0.weight", "F32", &[2, 3], f32s(&w)),
            ("0.bias", "F32", &[2], f32s(&[0.0; 2])),
            ("2.weight", "F64", &[1, 2], f64s(&[0.0, 1e300])),
            ("2.bias", "F32", &[1], f32s(&[0.0])),
        ]);
        let e = from_torch_bytes::<Two<f32>>(&file, &TorchNames::Sequential, &opts).unwrap_err();
        assert!(
            matches!(&e, WeightsError::NonFinite { name, index: 1 } if name == "2.weight"),
            "{e:?}"
        );
        let allow = LoadOptions {
            allow_non_finite: true,
        };
        let net: Two<f32> = from_torch_bytes(&file, &TorchNames::Sequential, &allow).unwrap();
        assert_eq!(net.out.w[0][1], f32::INFINITY);
        // Integers are not weights.
        let file = hand_made(&[("0.weight", "I32", &[2, 3], vec![0; 24])]);
        let e = from_torch_bytes::<Two<f32>>(
            &file,
            &TorchNames::Map(&[("hidden", "0"), ("out", "2")]),
            &opts,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor `0.weight` (for the network's `hidden.w`) has dtype I32; weights from PyTorch must be F32, F64, F16 or BF16"
        );
    }

    #[test]
    fn torch_name_maps_and_sequential_names_are_checked() {
        let opts = LoadOptions::default();
        let file = to_torch_bytes(&Two::<f32>::init(1), &TorchNames::Sequential).unwrap();
        let map_err = |map: &[(&str, &str)]| {
            let load = from_torch_bytes::<Two<f32>>(&file, &TorchNames::Map(map), &opts);
            let save = to_torch_bytes(&Two::<f32>::zeros(), &TorchNames::Map(map));
            let (e, e2) = (load.unwrap_err(), save.unwrap_err());
            assert_eq!(e.to_string(), e2.to_string());
            assert!(matches!(e, WeightsError::TorchNames(_)), "{e:?}");
            e.to_string()
        };
        assert_eq!(
            map_err(&[("hidden", "0")]),
            "PyTorch names: the name map has no entry for layer `out`"
        );
        assert_eq!(
            map_err(&[("hidden", "0"), ("out", "2"), ("hiden", "4")]),
            "PyTorch names: the name map has layer `hiden`, which the network does not have (its layers: `hidden`, `out`)"
        );
        assert!(map_err(&[("hidden", "0"), ("out", "2"), ("out", "4")])
            .contains("layer `out` more than once"));
        assert!(
            map_err(&[("hidden", "0"), ("out", "0")]).contains("module `0` to more than one layer")
        );

        // Sequential: as many modules as layers, all under one prefix.
        let seq = |tensors: &[(&str, &str, &[usize], Vec<u8>)]| {
            from_torch_bytes::<Two<f32>>(&hand_made(tensors), &TorchNames::Sequential, &opts)
        };
        let l1 = |p: &'static str| -> Vec<(&'static str, &'static str, &'static [usize], Vec<u8>)> {
            let (w, b): (&'static str, &'static str) = match p {
                "0" => ("0.weight", "0.bias"),
                "1" => ("1.weight", "1.bias"),
                "a.0" => ("a.0.weight", "a.0.bias"),
                _ => ("b.2.weight", "b.2.bias"),
            };
            vec![
                (w, "F32", &[2, 3], vec![0; 24]),
                (b, "F32", &[2], vec![0; 8]),
            ]
        };
        let e = seq(&l1("0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PyTorch names: the file has 1 module(s) with a `weight` or `bias`, `0`, but the network has 2 layer(s), `hidden`, `out`; with TorchNames::Sequential every such module must be one of the network's layers (a Linear)"
        );
        let e = seq(&[("weight", "F32", &[1], vec![0; 4])]).unwrap_err();
        assert!(
            e.to_string()
                .contains("the file has no tensors named `<index>.weight`"),
            "{e}"
        );
        let e = seq(&[l1("a.0"), l1("b.2")].concat()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PyTorch names: `a.0.bias` and `b.2.bias` are not in the same nn.Sequential (prefixes `a.` and `b.`); name the modules with TorchNames::Map"
        );
        // Three modules with weights (a BatchNorm's among them) for two layers.
        let mut bn = [l1("0"), l1("1")].concat();
        bn.extend([
            ("2.weight", "F32", &[1, 2][..], vec![0; 8]),
            ("2.bias", "F32", &[1][..], vec![0; 4]),
            ("1.running_mean", "F32", &[2][..], vec![0; 8]),
        ]);
        let e = seq(&bn).unwrap_err();
        assert!(
            e.to_string()
                .contains("3 module(s) with a `weight` or `bias`, `0`, `1`, `2`"),
            "{e}"
        );
        // Non-parameter tensors are extra; so are names that are not a Sequential's.
        bn.retain(|(n, ..)| !n.starts_with("1."));
        bn.push(("1.running_mean", "F32", &[2], vec![0; 8]));
        bn.push(("01.weight", "F32", &[2], vec![0; 8]));
        let e = seq(&bn).unwrap_err();
        assert!(
            matches!(&e, WeightsError::ExtraTensors { names } if names == &["01.weight", "1.running_mean"]),
            "{e:?}"
        );
        // The same file through a map of the two modules.
        let e = from_torch_bytes::<Two<f32>>(
            &hand_made(&bn),
            &TorchNames::Map(&[("hidden", "0"), ("out", "2")]),
            &opts,
        )
        .unwrap_err();
        assert!(matches!(e, WeightsError::ExtraTensors { .. }), "{e:?}");
        // Indices are canonical decimal numbers.
        assert_eq!(sequential_index("0"), Some(0));
        assert_eq!(sequential_index("+1"), None);
        assert_eq!(sequential_index(""), None);
        assert_eq!(sequential_index("99999999999999999999999"), None);
    }
}
