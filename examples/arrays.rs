//! Arrays and tables as step values: a model (an ndarray matrix, a `Vec<f32>`, an Arrow record
//! batch of its training history, its name) handed to the next step, a bare matrix, and an
//! Arrow table, all readable through the client API. A crate of your own turns on kubestep's
//! `ndarray` and `arrow` features; here: `cargo run --example arrays -- run`.
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use kubestep::prelude::*;
use ndarray::Array2;
use std::sync::Arc;

/// A model as a step returns one: arrays beside their metadata.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub name: String,
    pub weights: Array2<f64>,
    pub bias: Vec<f32>,
    /// Loss by epoch.
    #[serde(with = "kubestep::arrow")]
    pub history: RecordBatch,
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
        history: RecordBatch::try_from_iter([
            (
                "epoch",
                Arc::new(Int64Array::from_iter_values(0..10)) as ArrayRef,
            ),
            (
                "loss",
                Arc::new(Float64Array::from_iter_values(
                    (0..10).map(|e| 1.0 / f64::from(e + 1)),
                )),
            ),
        ])
        .expect("columns of one length"),
    }
}

/// The model's scores, transposed: a bare owned matrix that is not in standard layout.
#[step]
fn score(model: Model) -> Array2<f64> {
    assert_eq!(model.name, "linear");
    assert_eq!(model.weights.dim(), (rows(), 100));
    assert_eq!(model.weights[[rows() - 1, 99]], (rows() * 100 - 1) as f64);
    assert_eq!(model.history.num_rows(), 10);
    let mut scores = model.weights.clone();
    for (j, mut column) in scores.columns_mut().into_iter().enumerate() {
        column += f64::from(model.bias[j]);
    }
    scores.reversed_axes()
}

/// Each row's total, as an Arrow table.
#[step]
fn summary(scores: Array2<f64>) -> kubestep::arrow::Table {
    let totals: Vec<f64> = scores.rows().into_iter().map(|r| r.sum()).collect();
    RecordBatch::try_from_iter([
        (
            "row",
            Arc::new(Int64Array::from_iter_values(0..totals.len() as i64)) as ArrayRef,
        ),
        ("total", Arc::new(Float64Array::from(totals))),
    ])
    .expect("columns of one length")
    .into()
}

fn main() {
    Flow::new("arrays")
        .start(train)
        .then(score)
        .then(summary)
        .main()
}
