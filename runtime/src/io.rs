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

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safetensors::tensor::{SafeTensorError, TensorView};
use safetensors::{Dtype, SafeTensors};

use crate::data::{excerpt, EXCERPT_BYTES};
use crate::{Network, Scalar};

/// The most bytes of a message from the safetensors or JSON parser that an error keeps (the
/// parsers quote parts of the file, which may be huge).
const MESSAGE_BYTES: usize = 512;

/// How many names [`WeightsError::ExtraTensors`] shows in its message.
const SHOWN_NAMES: usize = 8;

/// Options of [`from_bytes_with`] and [`load_weights_with`]; [`from_bytes`] and
/// [`load_weights`] use the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept NaN and infinite weights. Default `false`: a file holding one is refused with
    /// [`WeightsError::NonFinite`], since a network with such a weight computes NaN (or
    /// infinity) for every input that reaches it.
    pub allow_non_finite: bool,
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

/// The network's weights as the bytes of a safetensors file.
pub fn to_bytes<N: Network>(net: &N) -> Result<Vec<u8>, WeightsError> {
    check_layout::<N>()?;
    let dtype = dtype_of::<N::Scalar>()?;
    let mut buffers = Vec::with_capacity(N::tensors().len());
    let mut params = net.params();
    for (name, shape) in N::tensors() {
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
        buffers.push((*name, shape.to_vec(), bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (*name, v))
                .map_err(|e| WeightsError::Invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None).map_err(|e| WeightsError::Invalid(e.to_string()))
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
pub fn from_bytes_with<N: Network>(bytes: &[u8], options: &LoadOptions) -> Result<N, WeightsError> {
    check_layout::<N>()?;
    let dtype = dtype_of::<N::Scalar>()?;
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
    let st = SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => WeightsError::Truncated(
            "the data section does not match the tensors declared in the header".into(),
        ),
        e => WeightsError::Invalid(excerpt(&e.to_string(), MESSAGE_BYTES)),
    })?;

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
        let n: usize = shape.iter().product();
        let out = &mut net.params_mut()[offset..offset + n];
        let data = t.data();
        let width = if dtype == Dtype::F32 { 4 } else { 8 };
        for (index, (o, c)) in out.iter_mut().zip(data.chunks_exact(width)).enumerate() {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            let v = if width == 4 {
                f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64
            } else {
                f64::from_le_bytes(b)
            };
            *o = N::Scalar::from_f64(v);
            if !options.allow_non_finite && !o.is_finite() {
                return Err(WeightsError::NonFinite {
                    name: (*name).to_owned(),
                    index,
                });
            }
        }
        offset += n;
    }
    let mut extra: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !N::tensors().iter().any(|(m, _)| m == n))
        .map(str::to_owned)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(WeightsError::ExtraTensors { names: extra });
    }
    Ok(net)
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
                if scan.last_end.as_ref().map_or(true, |(_, last)| end > *last) {
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
    let path = path.as_ref();
    let bytes = to_bytes(net)?;
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
    let limit = 8 + MAX_HEADER_BYTES + N::PARAMS as u64 * 8;
    let bytes = read_at_most(path, limit)?;
    from_bytes_with(&bytes, options)
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
}
