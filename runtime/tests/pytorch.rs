//! From CSV to deployed weights: PyTorch `state_dict`s in and out (`io::load_torch`,
//! `io::save_torch`), and model files that carry their `Standardizer` (`io::save_model`,
//! `io::load_model`).
//!
//! The PyTorch fixtures are built byte by byte from the safetensors spec with PyTorch's names and
//! layout (`weight` is `[out_features, in_features]`), here in Rust and, independently of this
//! crate's writer and of this file's, by `fixtures/make_torch_fixtures.py` (checked in with its
//! output).

use symnet_macros::network;
use symnet_runtime as symnet;

use symnet::data::{Dataset, Standardizer};
use symnet::io::{self, LoadOptions, TorchNames, WeightsError};
use symnet::Network;

network! {
    /// `nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))` (the softmax is the loss's).
    #[derive(Clone, Debug, PartialEq)]
    pub struct Net<f32> { input: 4, hidden: dense(8) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
}

network! {
    /// The same with a hidden layer of 16.
    #[derive(Debug)]
    pub struct Wide<f32> { input: 4, hidden: dense(16) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
}

network! {
    /// `Net` in f64.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Net64<f64> { input: 4, hidden: dense(8) -> relu, out: dense(3) -> softmax, loss: cross_entropy }
}

network! {
    /// One `nn.Linear(4, 3)`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Linear<f32> { input: 4, out: dense(3), loss: mse }
}

network! {
    /// A regression with two targets.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Reg<f64> { input: 3, hidden: dense(6) -> tanh, out: dense(2), loss: mse }
}

const OPTS: LoadOptions = LoadOptions {
    allow_non_finite: false,
};

// The fixture's values (as in fixtures/make_torch_fixtures.py), exact in f16, f32 and f64.
fn hidden_w(o: usize, i: usize) -> f64 {
    ((4 * o + i) as f64 - 16.0) / 8.0
}
fn hidden_b(o: usize) -> f64 {
    (o as f64 - 4.0) / 4.0
}
fn out_w(o: usize, i: usize) -> f64 {
    ((8 * o + i) as f64 - 12.0) / 16.0
}
const OUT_B: [f64; 3] = [0.5, -0.25, 0.125];

/// `Net` with the fixture's values written into its fields by hand.
fn by_hand() -> Net {
    let mut net = Net::zeros();
    for o in 0..8 {
        for i in 0..4 {
            net.hidden.w[o][i] = hidden_w(o, i) as f32;
        }
        net.hidden.b[o] = hidden_b(o) as f32;
    }
    for (o, b) in OUT_B.iter().enumerate() {
        for i in 0..8 {
            net.out.w[o][i] = out_w(o, i) as f32;
        }
        net.out.b[o] = *b as f32;
    }
    net
}

/// One tensor of a hand-built file: name, dtype, shape, little-endian data.
type Tensor = (String, &'static str, Vec<usize>, Vec<u8>);

fn f32_tensor(name: &str, shape: &[usize], values: impl IntoIterator<Item = f64>) -> Tensor {
    let data = values
        .into_iter()
        .flat_map(|v| (v as f32).to_le_bytes())
        .collect();
    (name.to_owned(), "F32", shape.to_vec(), data)
}

/// A PyTorch state dict of `Linear(4, 8)` and `Linear(8, 3)` as F32 tensors, the first module
/// named `first` and the second `second` (e.g. `0` and `2`, or `model.fc1` and `model.fc2`),
/// with the fixture's values.
fn state_dict(first: &str, second: &str) -> Vec<Tensor> {
    vec![
        f32_tensor(&format!("{second}.bias"), &[3], OUT_B.iter().copied()),
        f32_tensor(
            &format!("{first}.weight"),
            &[8, 4],
            (0..8).flat_map(|o| (0..4).map(move |i| hidden_w(o, i))),
        ),
        f32_tensor(
            &format!("{second}.weight"),
            &[3, 8],
            (0..3).flat_map(|o| (0..8).map(move |i| out_w(o, i))),
        ),
        f32_tensor(&format!("{first}.bias"), &[8], (0..8).map(hidden_b)),
    ]
}

/// The bytes of a safetensors file, by hand from the spec: an 8-byte little-endian header
/// length, the JSON header (with PyTorch's `__metadata__`, padded with spaces to a multiple of
/// 8), then the data of each tensor in the order given.
fn safetensors_file(tensors: &[Tensor]) -> Vec<u8> {
    let mut entries = vec![r#""__metadata__":{"format":"pt"}"#.to_owned()];
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
        entries.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{},{}]}}"#,
            shape.join(","),
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    let mut header = format!("{{{}}}", entries.join(","));
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header.as_bytes());
    file.extend(data);
    file
}

fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "symnet-pytorch-{tag}-{}.safetensors",
        std::process::id()
    ))
}

/// Inputs that reach both signs of every hidden unit.
fn inputs() -> Vec<[f32; 4]> {
    (0..16)
        .map(|k| {
            let k = k as f32;
            [
                k / 4.0 - 2.0,
                1.5 - k / 8.0,
                (k * 0.7).sin(),
                0.25 * (k % 3.0),
            ]
        })
        .collect()
}

/// `a` and `b` are the same network: equal parameters and bit-for-bit equal outputs.
fn assert_same(a: &Net, b: &Net) {
    assert_eq!(a, b);
    for x in inputs() {
        let (ya, yb) = (a.forward(&x), b.forward(&x));
        assert_eq!(ya.map(f32::to_bits), yb.map(f32::to_bits), "at {x:?}");
    }
}

#[test]
fn a_sequential_state_dict_loads_as_the_weights_set_by_hand() {
    let file = safetensors_file(&state_dict("0", "2"));
    let net: Net = io::from_torch_bytes(&file, &TorchNames::Sequential, &OPTS).unwrap();
    assert_same(&net, &by_hand());
    // Indices need only be increasing (a Dropout in between: 0, 3), and may sit under a prefix.
    for (first, second) in [("0", "3"), ("model.0", "model.2"), ("a.b.1", "a.b.10")] {
        let file = safetensors_file(&state_dict(first, second));
        let net: Net = io::from_torch_bytes(&file, &TorchNames::Sequential, &OPTS).unwrap();
        assert_same(&net, &by_hand());
    }
    // 10 comes after 9, not after 1.
    let file = safetensors_file(&state_dict("9", "10"));
    let net: Net = io::from_torch_bytes(&file, &TorchNames::Sequential, &OPTS).unwrap();
    assert_same(&net, &by_hand());
    // Into an f64 network, converted exactly.
    let net: Net64 = io::from_torch_bytes(&file, &TorchNames::Sequential, &OPTS).unwrap();
    assert_eq!(net.hidden.w[7][3], hidden_w(7, 3));
    assert_eq!(net.out.b, OUT_B);
}

#[test]
fn named_modules_load_through_a_name_map() {
    let map = [("hidden", "fc1"), ("out", "fc2")];
    let file = safetensors_file(&state_dict("fc1", "fc2"));
    let net: Net = io::from_torch_bytes(&file, &TorchNames::Map(&map), &OPTS).unwrap();
    assert_same(&net, &by_hand());
    // Under a prefix, the map gives the full module path; the order of the map does not matter.
    let map = [("out", "model.fc2"), ("hidden", "model.fc1")];
    let file = safetensors_file(&state_dict("model.fc1", "model.fc2"));
    let net: Net = io::from_torch_bytes(&file, &TorchNames::Map(&map), &OPTS).unwrap();
    assert_same(&net, &by_hand());
    // Named modules are not a Sequential's.
    let e = io::from_torch_bytes::<Net>(&file, &TorchNames::Sequential, &OPTS).unwrap_err();
    assert!(matches!(e, WeightsError::TorchNames(_)), "{e:?}");
    // A bare nn.Linear: tensors `weight` and `bias`, the empty module name.
    let file = safetensors_file(&[
        f32_tensor("weight", &[3, 4], (0..12).map(f64::from)),
        f32_tensor("bias", &[3], [1.0, 2.0, 3.0]),
    ]);
    let lin: Linear = io::from_torch_bytes(&file, &TorchNames::Map(&[("out", "")]), &OPTS).unwrap();
    assert_eq!(lin.out.w[2], [8.0, 9.0, 10.0, 11.0]);
    assert_eq!(lin.out.b, [1.0, 2.0, 3.0]);
}

#[test]
fn the_checked_in_fixtures_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let net: Net = io::load_torch(
        dir.join("torch_sequential_f32.safetensors"),
        &TorchNames::Sequential,
        &OPTS,
    )
    .unwrap();
    assert_same(&net, &by_hand());
    // F16 tensors, converted; the values are exact in f16.
    let map = [("hidden", "model.fc1"), ("out", "model.fc2")];
    let path = dir.join("torch_named_f16.safetensors");
    let net: Net = io::load_torch(&path, &TorchNames::Map(&map), &OPTS).unwrap();
    assert_same(&net, &by_hand());
    let net: Net64 = io::load_torch(&path, &TorchNames::Map(&map), &OPTS).unwrap();
    assert_eq!(net.out.w[2][7], out_w(2, 7));
    // Strict loading of the network's own names refuses them, naming the first missing tensor.
    let e = io::load_weights::<Net>(&path).unwrap_err();
    assert!(
        matches!(&e, WeightsError::MissingTensor { name } if name == "hidden.w"),
        "{e:?}"
    );
}

#[test]
fn a_wrong_shape_names_the_tensor_and_the_layer() {
    let file = safetensors_file(&state_dict("0", "2"));
    let e = io::from_torch_bytes::<Wide>(&file, &TorchNames::Sequential, &OPTS).unwrap_err();
    assert!(
        matches!(&e, WeightsError::TorchShape { torch, tensor, expected, found }
            if torch == "0.weight" && tensor == "hidden.w" && expected == &[16, 4] && found == &[8, 4]),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "tensor `0.weight` (for the network's `hidden.w`) has shape [8, 4], but the network expects [16, 4]"
    );
    // The second layer of a transposed export (`[in, out]`, as in Keras).
    let mut tensors = state_dict("fc1", "fc2");
    tensors[2].2 = vec![8, 3];
    let map = [("hidden", "fc1"), ("out", "fc2")];
    let e = io::from_torch_bytes::<Net>(&safetensors_file(&tensors), &TorchNames::Map(&map), &OPTS)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tensor `fc2.weight` (for the network's `out.w`) has shape [8, 3], but the network expects [3, 8]"
    );
}

#[test]
fn a_missing_tensor_names_the_torch_name_and_the_layer() {
    // `nn.Linear(8, 3, bias=False)`.
    let mut tensors = state_dict("0", "2");
    tensors.retain(|(name, ..)| name != "2.bias");
    let e =
        io::from_torch_bytes::<Net>(&safetensors_file(&tensors), &TorchNames::Sequential, &OPTS)
            .unwrap_err();
    assert!(
        matches!(&e, WeightsError::TorchMissing { torch, tensor } if torch == "2.bias" && tensor == "out.b"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the file has no tensor `2.bias` (for the network's `out.b`)"
    );
    // A map naming a module the file does not have.
    let file = safetensors_file(&state_dict("fc1", "fc2"));
    let map = [("hidden", "fc1"), ("out", "head")];
    let e = io::from_torch_bytes::<Net>(&file, &TorchNames::Map(&map), &OPTS).unwrap_err();
    assert!(
        matches!(&e, WeightsError::TorchMissing { torch, tensor } if torch == "head.weight" && tensor == "out.w"),
        "{e:?}"
    );
    // A missing layer: one module for two layers.
    let tensors: Vec<Tensor> = state_dict("0", "2")
        .into_iter()
        .filter(|t| t.0.starts_with("0."))
        .collect();
    let e =
        io::from_torch_bytes::<Net>(&safetensors_file(&tensors), &TorchNames::Sequential, &OPTS)
            .unwrap_err();
    assert!(e.to_string().contains("1 module(s) with a `weight` or `bias`, `0`, but the network has 2 layer(s), `hidden`, `out`"), "{e}");
}

#[test]
fn extra_tensors_are_refused_and_listed() {
    // A BatchNorm's running statistics (its weight and bias removed so that the layers match).
    let mut tensors = state_dict("0", "3");
    tensors.push(f32_tensor("1.running_mean", &[8], [0.0; 8]));
    tensors.push(f32_tensor("1.running_var", &[8], [1.0; 8]));
    tensors.push(("1.num_batches_tracked".into(), "I64", vec![], vec![0; 8]));
    let e =
        io::from_torch_bytes::<Net>(&safetensors_file(&tensors), &TorchNames::Sequential, &OPTS)
            .unwrap_err();
    assert!(
        matches!(&e, WeightsError::ExtraTensors { names }
            if names == &["1.num_batches_tracked", "1.running_mean", "1.running_var"]),
        "{e:?}"
    );
}

#[test]
fn export_then_import_round_trips() {
    let net = Net::init(11);
    for map in [None, Some(&[("hidden", "fc1"), ("out", "fc2")][..])] {
        let names = map.map_or(TorchNames::Sequential, TorchNames::Map);
        let path = temp_path("export");
        io::save_torch(&net, &path, &names).unwrap();
        let back: Net = io::load_torch(&path, &names, &OPTS).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_same(&back, &net);
    }
    // Exported by name map, imported as a Sequential (and back), when the names are indices.
    let map = [("hidden", "0"), ("out", "2")];
    let bytes = io::to_torch_bytes(&net, &TorchNames::Map(&map)).unwrap();
    assert_eq!(
        bytes,
        io::to_torch_bytes(&net, &TorchNames::Sequential).unwrap()
    );
    let back: Net = io::from_torch_bytes(&bytes, &TorchNames::Sequential, &OPTS).unwrap();
    assert_same(&back, &net);
    // An f64 network exports F64, which loads into an f32 network rounded to nearest.
    let net64 = Net64::init(11);
    let bytes = io::to_torch_bytes(&net64, &TorchNames::Sequential).unwrap();
    let back: Net = io::from_torch_bytes(&bytes, &TorchNames::Sequential, &OPTS).unwrap();
    for (a, b) in back.params().iter().zip(net64.params()) {
        assert_eq!(*a, *b as f32);
    }
}

#[test]
fn the_exported_header_has_torch_names_and_out_in_shapes() {
    let net = by_hand();
    let bytes = io::to_torch_bytes(&net, &TorchNames::Sequential).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let data = &bytes[8 + len..];
    let obj = header.as_object().unwrap();
    let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["0.bias", "0.weight", "2.bias", "2.weight", "__metadata__"]
    );
    assert_eq!(header["__metadata__"]["format"], "pt");
    for (name, shape) in [
        ("0.weight", vec![8, 4]),
        ("0.bias", vec![8]),
        ("2.weight", vec![3, 8]),
        ("2.bias", vec![3]),
    ] {
        assert_eq!(header[name]["dtype"], "F32", "{name}");
        assert_eq!(header[name]["shape"], serde_json::json!(shape), "{name}");
    }
    // The data of `2.weight` is the `[out, in]` matrix, row-major.
    let offsets = &header["2.weight"]["data_offsets"];
    let (start, end) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    let values: Vec<f32> = data[start..end]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected: Vec<f32> = net.out.w.iter().flatten().copied().collect();
    assert_eq!(values, expected);
    assert_eq!(values[1], out_w(0, 1) as f32);
    // A name map names the modules.
    let map = [("hidden", "encoder.fc"), ("out", "head")];
    let bytes = io::to_torch_bytes(&net, &TorchNames::Map(&map)).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    assert_eq!(
        header["encoder.fc.weight"]["shape"],
        serde_json::json!([8, 4])
    );
    assert_eq!(header["head.bias"]["shape"], serde_json::json!([3]));
}

// ---------------------------------------------------------------------------------------------
// Model files that carry their standardizer.

/// A regression data set in raw units: three features of very different scales, two targets.
fn raw_regression() -> Dataset<f64> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for k in 0..40 {
        let k = k as f64;
        let row = [1000.0 + 37.0 * k, 0.01 * (k * 0.3).cos(), -5.0 + (k % 7.0)];
        x.extend(row);
        y.push(2e5 + 300.0 * row[0] - 4e6 * row[1]);
        y.push(0.5 * row[2] + 1e-3 * k);
    }
    Dataset::new(x, y, 3, 2).unwrap()
}

#[test]
fn a_saved_model_predicts_in_raw_units_after_reload() {
    let raw = raw_regression();
    let scaler = Standardizer::fit_with_targets(&raw);
    let train = scaler.transform(&raw);
    // A few steps of gradient descent on the standardized data.
    let mut net = Reg::init(3);
    let first = mean_loss(&net, &train);
    for _ in 0..200 {
        let mut grad = Reg::zeros();
        let scale = 1.0 / train.len() as f64;
        net.backward_rows(train.xs(), train.ys(), scale, &mut grad);
        for (p, g) in net.params_mut().iter_mut().zip(grad.params()) {
            *p -= 0.1 * g;
        }
    }
    assert!(mean_loss(&net, &train) < first / 2.0);

    let path = temp_path("model");
    io::save_model(&net, Some(&scaler), &path).unwrap();
    let (back, scaler_back): (Reg, _) = io::load_model(&path).unwrap();
    let plain: Reg = io::load_weights(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let scaler_back = scaler_back.unwrap();
    assert_eq!(back, net);
    assert_eq!(plain, net);
    assert_eq!(scaler_back, scaler);
    for i in 0..raw.len() {
        let a = scaler.predict(&net, raw.x(i));
        let b = scaler_back.predict(&back, raw.x(i));
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Raw units: by hand, standardize, forward, unscale.
        let mut x: [f64; 3] = raw.x(i).try_into().unwrap();
        scaler_back.apply_row(&mut x);
        let mut y = back.forward(&x);
        scaler_back.unscale_target(&mut y);
        assert_eq!(y.to_vec(), b);
    }
    // The predictions are in the targets' units (the first about 5e5), not standardized ones.
    let (p, y) = (scaler_back.predict(&back, raw.x(5)), raw.y(5));
    assert!((p[0] - y[0]).abs() < 0.1 * y[0], "{p:?} for {y:?}");
    assert!((p[1] - y[1]).abs() < 1.0, "{p:?} for {y:?}");
}

#[test]
fn a_classifier_model_carries_a_feature_only_standardizer() {
    let raw = Dataset::<f32>::new(
        (0..32).map(|k| 100.0 + k as f32 * 3.5).collect(),
        (0..8)
            .flat_map(|k| {
                [
                    (k % 3 == 0) as u8 as f32,
                    (k % 3 == 1) as u8 as f32,
                    (k % 3 == 2) as u8 as f32,
                ]
            })
            .collect(),
        4,
        3,
    )
    .unwrap();
    let scaler = Standardizer::fit(&raw);
    let net = Net::init(4);
    let bytes = io::model_to_bytes(&net, Some(&scaler)).unwrap();
    let (back, s): (Net, _) = io::model_from_bytes(&bytes).unwrap();
    let s = s.unwrap();
    assert_eq!(s.target_mean(), None);
    for i in 0..raw.len() {
        let mut x = *raw.row::<4>(i);
        s.apply_row(&mut x);
        assert_eq!(back.forward(&x), net.forward(&x));
        assert_eq!(s.predict(&back, raw.x(i)), back.forward(&x).to_vec());
    }
    // The standardizer must have the network's widths.
    let other = Standardizer::new(vec![0.0; 3], vec![1.0; 3]).unwrap();
    let e = io::model_to_bytes(&net, Some(&other)).unwrap_err();
    assert!(
        matches!(&e, WeightsError::Standardizer { name, .. } if name == io::X_MEAN),
        "{e:?}"
    );
}

fn mean_loss(net: &Reg, data: &Dataset<f64>) -> f64 {
    (0..data.len())
        .map(|i| net.loss_slice(data.x(i), data.y(i)))
        .sum::<f64>()
        / data.len() as f64
}
