//! `#[symnet(weights = "file.safetensors")]`: weights embedded at compile time as
//! `const PRETRAINED: Self`, for targets with no file system (`no_std`, flash).
//!
//! The file is read relative to the user's crate (`CARGO_MANIFEST_DIR`), checked as strictly as
//! the runtime's `load_weights` checks a file at run time (exactly the network's tensors, each
//! once, with its shape, the network's dtype, every value finite; the runtime's `__symnet.*`
//! preprocessing tensors are ignored), and every mismatch is a compile error at the path. The
//! generated code `include_bytes!`s the file, so cargo rebuilds the crate when it changes.
//!
//! The reader is written here rather than taken from the `safetensors` crate, whose 0.8 header
//! validation overflows (a panic with overflow checks on) on offsets near `u64::MAX`, which the
//! runtime guards against before calling it: a corrupt file must be a compile error, never a
//! panicking macro.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::check::{Net, ScalarType};
use crate::ir::{bias_symbol, eval, weight_symbol, Shape};
use crate::{Compiled, KRATE};

/// The largest header this reader accepts, as the safetensors format does.
const MAX_HEADER: u64 = 100_000_000;

// The preprocessing tensors that `symnet::io::save_model` writes beside the weights, which
// the runtime's `load_weights` ignores too.
use symnet_runtime::__private::STANDARDIZER_TENSORS;
/// The item that defines `PRETRAINED` (and ties the build to the file), or nothing when the
/// declaration has no `weights` option.
pub fn embed(net: &Net, compiled: &Compiled) -> syn::Result<TokenStream> {
    let Some(lit) = &net.weights else {
        return Ok(TokenStream::new());
    };
    let err = |msg: String| syn::Error::new(lit.span(), msg);
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return Err(err(
            "cannot embed weights: CARGO_MANIFEST_DIR is not set (is this built by cargo?)".into(),
        ));
    };
    let path = PathBuf::from(dir).join(lit.value());
    // The largest file a network's weights (and preprocessing) can be in, as the runtime caps it.
    let limit =
        8 + MAX_HEADER + 8 * (net.params() as u64 + 2 * (net.inputs + net.outputs()) as u64);
    let bytes = read_at_most(&path, limit).map_err(|e| {
        err(format!(
            "cannot read the weights file `{}` (a path relative to the crate's Cargo.toml): {e}",
            lit.value()
        ))
    })?;
    let file = parse(&bytes).map_err(|m| err(format!("`{}`: {m}", lit.value())))?;

    let dtype = match net.scalar {
        ScalarType::F32 => "F32",
        ScalarType::F64 => "F64",
    };
    let mut used = HashSet::new();
    let mut layers = Vec::new();
    for (k, layer) in net.layers.iter().enumerate() {
        let (i, o) = (net.fan_in(k), layer.width);
        let mut take = |suffix: &str, shape: &[usize]| -> syn::Result<Vec<f64>> {
            let name = format!("{}.{suffix}", layer.name);
            let t = file.tensors.iter().find(|t| t.name == name).ok_or_else(|| {
                err(format!(
                    "the weights file has no tensor `{name}` (layer `{}` needs `{name}` with shape {shape:?})",
                    layer.name
                ))
            })?;
            used.insert(name.clone());
            if t.dtype != dtype {
                return Err(err(format!(
                    "tensor `{name}` has dtype {}, but the network's scalar is {dtype}",
                    t.dtype
                )));
            }
            if t.shape != shape {
                return Err(err(format!(
                    "tensor `{name}` has shape {:?}, but layer `{}` expects {shape:?}",
                    t.shape, layer.name
                )));
            }
            let values = t.values(&bytes[file.data_start..]);
            if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(format!(
                    "tensor `{name}` holds a value that is not finite at index {index}: a network with it computes NaN"
                )));
            }
            Ok(values)
        };
        let w = take("w", &[o, i])?;
        let b = take("b", &[o])?;
        layers.push((layer, w, b, i));
    }
    let mut extra: Vec<&str> = file
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !used.contains(*n) && !STANDARDIZER_TENSORS.contains(n))
        .collect();
    if !extra.is_empty() {
        extra.sort_unstable();
        extra.truncate(8);
        return Err(err(format!(
            "the weights file has tensors the network does not have: {}",
            extra.join(", ")
        )));
    }

    let lit_of = |v: f64| -> TokenStream {
        let l = match net.scalar {
            ScalarType::F32 => Literal::f32_suffixed((v as f32).abs()),
            ScalarType::F64 => Literal::f64_suffixed(v.abs()),
        };
        if v.is_sign_negative() {
            quote!(-#l)
        } else {
            quote!(#l)
        }
    };
    // A value of `shape` from its elements, row-major.
    let array_of = |shape: Shape, v: &[f64]| -> TokenStream {
        match shape {
            Shape::Scalar => lit_of(v[0]),
            Shape::Vector(_) => {
                let e = v.iter().map(|&x| lit_of(x));
                quote!([#(#e),*])
            }
            Shape::Matrix(_, c) => {
                let rows = v.chunks(c.max(1)).map(|row| {
                    let e = row.iter().map(|&x| lit_of(x));
                    quote!([#(#e),*])
                });
                quote!([#(#rows),*])
            }
        }
    };
    let fields = layers.iter().map(|(layer, w, b, i)| {
        let name = &layer.name;
        let w = array_of(Shape::Matrix(w.len() / i.max(&1), *i), w);
        let b = array_of(Shape::Vector(b.len()), b);
        quote!(#name: #KRATE::Dense { w: #w, b: #b })
    });

    // The prepared form: every value the per-sample forward pass reads, computed here from the
    // file's weights (in f64, rounded once to the scalar type) as `prepare()` computes it at
    // run time (in the scalar type, so the two may differ in the last bit where work is hoisted).
    let mut env = HashMap::new();
    for (layer, w, b, _) in &layers {
        let name = layer.name.to_string();
        env.insert(weight_symbol(&name), w.clone());
        env.insert(bias_symbol(&name), b.clone());
    }
    let split = &compiled.prepared_split;
    let hoisted = eval(&split.hoisted, &env).ok_or_else(|| {
        err("internal error: the prepared form of the embedded weights cannot be computed; please report this declaration".into())
    })?;
    let mut prepared_fields = Vec::new();
    for (k, f) in split.frontier.iter().enumerate() {
        let field = format_ident!("p{}", k);
        let values = match (f.param, f.root) {
            (Some(s), _) => env.get(&s).cloned().unwrap_or_default(),
            (None, Some(r)) => hoisted.get(r).cloned().unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        // A value the file's weights make overflow (W2 W1 of huge weights) would be an
        // infinite literal: an error, not a panicking macro.
        let rounded = |v: f64| match net.scalar {
            ScalarType::F32 => (v as f32) as f64,
            ScalarType::F64 => v,
        };
        if let Some(index) = values.iter().position(|&v| !rounded(v).is_finite()) {
            return Err(err(format!(
                "the prepared form of these weights overflows {}: value {index} of a parameter-only product is not finite",
                dtype.to_lowercase()
            )));
        }
        let values = match (f.input_major, f.shape) {
            // Stored input-major: the row-major values of the transpose.
            (true, Shape::Matrix(r, c)) if values.len() == r * c => (0..c)
                .flat_map(|j| (0..r).map(move |i| (i, j)))
                .map(|(i, j)| values[i * c + j])
                .collect(),
            _ => values,
        };
        let value = array_of(f.stored_shape(), &values);
        prepared_fields.push(quote!(#field: #value));
    }
    let prepared = format_ident!("{}Prepared", net.ident);

    let ident = &net.ident;
    let cfgs = &net.cfgs;
    let abs = path.to_string_lossy().into_owned();
    let doc = format!(
        "The weights of `{}`, embedded at compile time (the build reruns when the file changes).",
        lit.value()
    );
    let prepared_doc = format!(
        "The inference form of the weights of `{}`, computed at compile time: what `prepare()` \
         of `{ident}::PRETRAINED` computes, with the parameter-only work done in `f64` and \
         rounded once.",
        lit.value()
    );
    Ok(quote! {
        #(#cfgs)*
        const _: () = {
            // Cargo rebuilds the crate when the file changes.
            const _: &[u8] = ::core::include_bytes!(#abs);

            #[automatically_derived]
            #[allow(clippy::all, clippy::pedantic, clippy::excessive_precision, clippy::unreadable_literal)]
            impl #ident {
                #[doc = #doc]
                pub const PRETRAINED: Self = Self { #(#fields,)* };
            }

            #[automatically_derived]
            #[allow(clippy::all, clippy::pedantic, clippy::excessive_precision, clippy::unreadable_literal)]
            impl #prepared {
                #[doc = #prepared_doc]
                pub const PRETRAINED: Self = Self { #(#prepared_fields,)* };
            }
        };
    })
}

/// The file's bytes, refusing to read more than `limit` of them.
fn read_at_most(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "the file is larger than {limit} bytes, the most a weights file of this network can be"
        )));
    }
    Ok(bytes)
}

/// A tensor of the file: its name, dtype, shape and byte range in the data section.
struct TensorEntry {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

impl TensorEntry {
    /// The values as `f64` (F32 and F64 only; the dtype was checked before).
    fn values(&self, data: &[u8]) -> Vec<f64> {
        let bytes = &data[self.start..self.end];
        match self.dtype.as_str() {
            "F32" => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            _ => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b)
                })
                .collect(),
        }
    }
}

struct File {
    tensors: Vec<TensorEntry>,
    data_start: usize,
}

/// Reads a safetensors file: an 8-byte little-endian header length, a JSON header mapping
/// names to `{dtype, shape, data_offsets}` (and an optional `__metadata__`), then the data.
fn parse(bytes: &[u8]) -> Result<File, String> {
    let Some(len) = bytes.get(..8) else {
        return Err(format!(
            "not a safetensors file: {} bytes, fewer than the 8-byte header length",
            bytes.len()
        ));
    };
    let mut b = [0u8; 8];
    b.copy_from_slice(len);
    let header_len = u64::from_le_bytes(b);
    if header_len > MAX_HEADER || header_len > (bytes.len() - 8) as u64 {
        return Err(format!(
            "not a safetensors file: a header of {header_len} bytes in a file of {}",
            bytes.len()
        ));
    }
    let data_start = 8 + header_len as usize;
    let header = &bytes[8..data_start];
    let data_len = bytes.len() - data_start;
    let entries: Entries = serde_json::from_slice(header).map_err(|e| {
        format!("not a safetensors file: the header is not the expected JSON ({e})")
    })?;
    let mut seen = HashSet::new();
    let mut tensors = Vec::new();
    for (name, value) in entries.0 {
        if name == "__metadata__" {
            continue;
        }
        if !seen.insert(name.clone()) {
            return Err(format!("the header names tensor `{name}` more than once"));
        }
        let bad = |what: &str| format!("tensor `{name}`: {what}");
        let dtype = value
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad("no dtype"))?
            .to_owned();
        let shape: Vec<usize> = value
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad("no shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a dimension is not a non-negative integer"))?;
        let offsets: Vec<u64> = value
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .ok_or_else(|| bad("no data_offsets"))?
            .iter()
            .map(|o| o.as_u64())
            .collect::<Option<_>>()
            .ok_or_else(|| bad("an offset is not a non-negative integer"))?;
        let [start, end] = offsets[..] else {
            return Err(bad("data_offsets is not [start, end]"));
        };
        if start > end || end > data_len as u64 {
            return Err(bad(&format!(
                "data_offsets [{start}, {end}] lie outside the {data_len} bytes of data"
            )));
        }
        let width: u128 = match dtype.as_str() {
            "F32" => 4,
            "F64" => 8,
            _ => 0,
        };
        let count = shape
            .iter()
            .try_fold(1u128, |a, &d| a.checked_mul(d as u128));
        if width != 0 && count.and_then(|c| c.checked_mul(width)) != Some((end - start) as u128) {
            return Err(bad(&format!(
                "shape {shape:?} of {dtype} does not fill its {} bytes of data",
                end - start
            )));
        }
        tensors.push(TensorEntry {
            name,
            dtype,
            shape,
            start: start as usize,
            end: end as usize,
        });
    }
    // As the format (and the runtime's reader) requires: the tensors' data, in offset order,
    // tile the data section exactly, with no gap, overlap or trailing bytes.
    let mut spans: Vec<(usize, usize, &str)> = tensors
        .iter()
        .map(|t| (t.start, t.end, t.name.as_str()))
        .collect();
    spans.sort_unstable();
    let mut at = 0;
    for (start, end, name) in spans {
        if start != at {
            return Err(format!(
                "tensor `{name}`: its data starts at byte {start}, but the previous tensor ends at {at} (gaps and overlaps are not allowed)"
            ));
        }
        at = end;
    }
    if at != data_len {
        return Err(format!(
            "the tensors' data ends at byte {at}, but {data_len} bytes follow the header"
        ));
    }
    Ok(File {
        tensors,
        data_start,
    })
}

/// The header's entries in order, duplicates kept (a JSON map into a `HashMap` would keep only
/// the last of a repeated name).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}
