//! Arrays as step values: a model's weights (an ndarray matrix beside a `Vec<f32>` and its
//! name) handed to the next step, and a bare matrix read back through the client API. A crate of
//! your own turns on kubestep's `ndarray` feature; here: `cargo run --example arrays -- run`.
use kubestep::prelude::*;
use ndarray::Array2;

/// A model as a step returns one: arrays beside their metadata.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub name: String,
    pub weights: Array2<f64>,
    pub bias: Vec<f32>,
}

/// Rows of the weight matrix (`ROWS`, default 1000) by 100 columns.
fn rows() -> usize {
    std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[step]
fn train() -> Model {
    Model {
        name: "linear".into(),
        weights: Array2::from_shape_fn((rows(), 100), |(i, j)| (i * 100 + j) as f64),
        bias: (0..100).map(|j| j as f32 * 0.5).collect(),
    }
}

/// The model's scores, transposed: a bare owned matrix that is not in standard layout.
#[step]
fn score(model: Model) -> Array2<f64> {
    assert_eq!(model.name, "linear");
    assert_eq!(model.weights.dim(), (rows(), 100));
    assert_eq!(model.weights[[rows() - 1, 99]], (rows() * 100 - 1) as f64);
    let mut scores = model.weights.clone();
    for (j, mut column) in scores.columns_mut().into_iter().enumerate() {
        column += f64::from(model.bias[j]);
    }
    scores.reversed_axes()
}

fn main() {
    Flow::new("arrays").start(train).then(score).main()
}
