//! Weights files in the [safetensors](https://huggingface.co/docs/safetensors) format.
//!
//! A network is saved as one tensor per layer weight and bias, named and shaped by
//! [`Network::tensors`] (`"hidden.w"` with shape `[OUT, IN]`, `"hidden.b"` with `[OUT]`), of
//! dtype `F32` or `F64` after [`Scalar::NAME`]. Loading checks that the
//! file has exactly these tensors, with these shapes and this dtype; any difference is a
//! [`WeightsError`], never a panic.
//!
//! ```ignore
//! symnet::network! { pub struct Xor { input: 2, hidden: dense(4) -> tanh, out: dense(1) -> sigmoid, loss: binary_cross_entropy } }
//! let net = Xor::init(1);
//! symnet::io::save_weights(&net, "xor.safetensors")?;
//! let back: Xor = symnet::io::load_weights("xor.safetensors")?;
//! ```

use std::path::{Path, PathBuf};

use safetensors::tensor::{SafeTensorError, TensorView};
use safetensors::{Dtype, SafeTensors};

use crate::{Network, Scalar};

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
    /// expected JSON, inconsistent offsets).
    #[error("not a valid safetensors file: {0}")]
    Invalid(String),
    /// The network has a tensor that the file lacks.
    #[error("the file has no tensor `{name}` (was it saved from another network?)")]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// The file has tensors that the network does not.
    #[error("the file has tensors the network does not have: {}", names.join(", "))]
    ExtraTensors {
        /// Their names, sorted.
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

/// A network from the bytes of a safetensors file, every tensor checked against the network.
pub fn from_bytes<N: Network>(bytes: &[u8]) -> Result<N, WeightsError> {
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
    if header_len > 100_000_000 {
        return Err(WeightsError::Invalid(format!(
            "header length {header_len} is implausible"
        )));
    }
    if header_len > (bytes.len() - 8) as u64 {
        return Err(WeightsError::Truncated(format!(
            "the header is {header_len} bytes but only {} follow the length",
            bytes.len() - 8
        )));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => WeightsError::Truncated(
            "the data section does not match the tensors declared in the header".into(),
        ),
        e => WeightsError::Invalid(e.to_string()),
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
        match dtype {
            Dtype::F32 => {
                for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                    *o = N::Scalar::from_f64(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64);
                }
            }
            _ => {
                for (o, c) in out.iter_mut().zip(data.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    *o = N::Scalar::from_f64(f64::from_le_bytes(b));
                }
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

/// Saves the network's weights to a safetensors file.
pub fn save_weights<N: Network>(net: &N, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let bytes = to_bytes(net)?;
    std::fs::write(path, bytes).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a network's weights from a safetensors file, every tensor checked against the network.
pub fn load_weights<N: Network>(path: impl AsRef<Path>) -> Result<N, WeightsError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes)
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
