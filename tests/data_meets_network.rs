//! Where a data set meets a generated network: the targets its loss needs, non-finite values,
//! the size limits shared by the macro and the runtime, and what the generated API gives a user
//! beyond the math (`Default`, `predict_class`, panics that name the caller).

use symnet::data::Dataset;
use symnet::optim::GradientDescent;
use symnet::train::{accuracy, mean_loss, train, TrainConfig, TrainError};
use symnet::{network, Network, Targets};

network! {
    pub struct Classes<f64> {
        input: 2,
        hidden: dense(3) -> tanh,
        out: dense(3) -> softmax,
        loss: cross_entropy,
    }
}

network! {
    #[derive(Debug, PartialEq, Default)]
    pub struct Binary<f32> {
        input: 2,
        out: dense(1) -> sigmoid,
        loss: binary_cross_entropy,
    }
}

network! {
    pub struct Regress<f32> {
        input: 2,
        out: dense(2),
        loss: mse,
    }
}

#[test]
fn each_loss_declares_the_targets_it_needs() {
    assert_eq!(Classes::TARGETS, Targets::Distribution);
    assert_eq!(Binary::TARGETS, Targets::Probabilities);
    assert_eq!(Regress::TARGETS, Targets::Real);
}

#[test]
fn cross_entropy_refuses_target_rows_that_are_not_distributions() {
    let x = vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    let y = vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0];
    let data = Dataset::new(x, y, 2, 3).unwrap();
    let mut net = Classes::init(1);
    let config = TrainConfig {
        epochs: 2,
        ..Default::default()
    };
    let err = train(&mut net, &data, &mut GradientDescent { lr: 0.1 }, &config).unwrap_err();
    assert!(matches!(err, TrainError::Targets { row: 1, .. }), "{err}");
    assert!(err.to_string().contains("row 1"), "{err}");
    assert!(matches!(
        mean_loss(&net, &data),
        Err(TrainError::Targets { row: 1, .. })
    ));
    // One-hot and soft rows that sum to 1 are fine.
    let ok = Dataset::new(vec![0.0; 4], vec![0.0, 1.0, 0.0, 0.25, 0.25, 0.5], 2, 3).unwrap();
    assert!(train(&mut net, &ok, &mut GradientDescent { lr: 0.1 }, &config).is_ok());
}

#[test]
fn binary_cross_entropy_refuses_targets_outside_0_1() {
    let data = Dataset::new(vec![0.0f32, 1.0, 1.0, 0.0], vec![1.0, 2.0], 2, 1).unwrap();
    let net = Binary::init(3);
    let err = accuracy(&net, &data).unwrap_err();
    assert!(matches!(err, TrainError::Targets { row: 1, .. }), "{err}");
}

#[test]
fn a_nan_feature_is_an_error_not_a_plausible_loss() {
    let data = Dataset::new(vec![0.0f32, f32::NAN], vec![1.0, 0.0], 2, 2).unwrap();
    let net = Regress::init(3);
    let err = mean_loss(&net, &data).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFinite {
                row: 0,
                what: "input",
                column: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn default_is_zeros_even_when_derived() {
    assert_eq!(Binary::default(), Binary::zeros());
    assert!(Classes::default().params().iter().all(|&p| p == 0.0));
}

#[test]
fn classifiers_predict_a_class() {
    let mut net = Binary::zeros();
    net.out.w = [[1.0, -1.0]];
    assert_eq!(net.predict_class(&[2.0, 0.0]), 1);
    assert_eq!(net.predict_class(&[0.0, 2.0]), 0);
    assert_eq!(net.prepare().predict_class(&[2.0, 0.0]), 1);

    let mut net = Classes::zeros();
    net.out.b = [0.0, 3.0, 1.0];
    assert_eq!(net.predict_class(&[0.3, -0.2]), 1);
    assert_eq!(symnet::argmax(&net.forward(&[0.3, -0.2])), 1);
}

/// The file and line where the panic inside `f` was reported.
fn panic_location(f: impl FnOnce() + std::panic::UnwindSafe) -> (String, u32) {
    use std::sync::{Arc, Mutex};
    // The panic hook is process-wide: tests that swap it take turns.
    static HOOK: Mutex<()> = Mutex::new(());
    let _turn = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(l) = info.location() {
            *s.lock().unwrap() = Some((l.file().to_owned(), l.line()));
        }
    }));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(prev);
    assert!(r.is_err(), "no panic");
    let loc = seen.lock().unwrap().clone();
    loc.expect("a location")
}

#[test]
fn length_panics_name_the_caller() {
    let net = Regress::init(1);
    let (file, line) = panic_location(|| {
        let mut out = [[0.0f32; 2]; 1];
        net.forward_batch(&[[1.0, 2.0], [3.0, 4.0]], &mut out);
    });
    assert!(file.ends_with("data_meets_network.rs"), "{file}:{line}");
    assert_eq!(line, line!() - 3);

    let (file, line) = panic_location(|| {
        let mut grad = Regress::zeros();
        net.backward_batch(&[[1.0, 2.0]], &[], &mut grad);
    });
    assert!(file.ends_with("data_meets_network.rs"), "{file}:{line}");
    assert_eq!(line, line!() - 3);

    let (file, line) = panic_location(|| {
        let mut out = [0.0f32; 2];
        net.forward_slice(&[1.0], &mut out);
    });
    assert!(file.ends_with("data_meets_network.rs"), "{file}:{line}");
    assert_eq!(line, line!() - 3);
}

#[test]
fn a_data_set_hands_out_rows_the_generated_functions_take() {
    let data =
        Dataset::<f32>::new(vec![1.0, 2.0, 3.0, 4.0], vec![0.5, 1.0, 0.0, -1.0], 2, 2).unwrap();
    let net = Regress::init(4);
    // Typed rows into the per-sample and the batch functions, no conversion in between.
    let y = net.forward(data.row(1));
    let mut out = [[0.0f32; 2]; 2];
    net.forward_batch(data.rows(), &mut out);
    assert_eq!(out[1], y);
    let loss = net.loss_batch(data.rows(), data.targets());
    let by_hand =
        (net.loss(data.row(0), data.target(0)) + net.loss(data.row(1), data.target(1))) / 2.0;
    assert!((loss - by_hand).abs() <= 1e-6 * by_hand.abs());

    // A width that does not match is a panic at the caller, naming both widths.
    let (file, line) = panic_location(|| {
        let _: &[f32; 3] = data.row(0);
    });
    assert!(file.ends_with("data_meets_network.rs"), "{file}:{line}");
    assert_eq!(line, line!() - 3);
}

network! {
    pub struct Diabetes<f64> {
        input: 10,
        hidden: dense(8) -> tanh,
        out: dense(1),
        loss: mse,
    }
}

#[test]
fn a_saved_model_predicts_in_raw_units_after_reload() {
    use symnet::{load_model, save_model, Adam, Standardizer, Target};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/diabetes.csv");
    let data = Dataset::<f64>::from_csv(path, Target::Regression).unwrap();
    let scaler = Standardizer::fit_with_targets(&data);
    let mut net = Diabetes::init(5);
    let config = TrainConfig {
        epochs: 30,
        batch_size: Some(32),
        ..Default::default()
    };
    let mut adam = Adam {
        lr: 0.01,
        ..Default::default()
    };
    train(&mut net, &scaler.transform(&data), &mut adam, &config).unwrap();

    // Raw features in, raw disease progression out.
    let predict = |net: &Diabetes, s: &Standardizer| -> Vec<f64> {
        (0..data.len())
            .map(|i| {
                let mut x: [f64; 10] = *data.row(i);
                s.apply_row(&mut x);
                let mut y = net.forward(&x);
                s.unscale_target(&mut y);
                y[0]
            })
            .collect()
    };
    let before = predict(&net, &scaler);
    let file = std::env::temp_dir().join(format!("diabetes-{}.safetensors", std::process::id()));
    save_model(&net, Some(&scaler), &file).unwrap();
    // A fresh scope, as another process would have: only the file.
    let after = {
        let (net, scaler) = load_model::<Diabetes>(&file).unwrap();
        predict(&net, &scaler.expect("saved with the model"))
    };
    std::fs::remove_file(&file).unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&before), bits(&after));
    // The predictions are in raw units: a fit better than the mean, on the targets' own scale.
    let ys = data.ys();
    let mean = ys.iter().sum::<f64>() / ys.len() as f64;
    let sse = |p: &dyn Fn(usize) -> f64| (0..ys.len()).map(|i| (ys[i] - p(i)).powi(2)).sum::<f64>();
    assert!(sse(&|i| after[i]) < 0.7 * sse(&|_| mean));
}
