//! The AccuNode scorecards as committed in `models/artifacts/`, against probabilities computed by an
//! independent implementation of the original's rules (Python floats, the reference JSON's `semantics`),
//! compared bit for bit. Rows cover bin edges (high inclusive, low exclusive), missing values, values
//! outside every bin, and infinities.

use pdscore_models::{committed_artifacts_dir, cpu, registry::Registry};

const ANNUAL: &[(&[Option<f64>], u64)] = &[
    (
        &[Some(32.0), Some(1.54), Some(-0.47), Some(0.007), Some(3.64)],
        0x3f9e9f9d753471cc,
    ), // 0.02990575816976264
    (
        &[Some(0.0), Some(-1.0), Some(100.0), Some(275304.0), Some(-50.0)],
        0x3f95b40f4f411aa5,
    ), // 0.021194686138438574
    (&[None, None, None, None, None], 0x3f95fdbc23bd9228), // 0.021475734406879138
    (
        &[Some(72.5), Some(6.1), Some(-3.2), Some(275304.5), Some(20.0)],
        0x3fa36244a95d260d,
    ), // 0.03785910193853335
    (
        &[
            Some(f64::INFINITY),
            Some(f64::INFINITY),
            Some(f64::INFINITY),
            Some(f64::INFINITY),
            Some(f64::INFINITY),
        ],
        0x3f9fcef06db4ab5d,
    ), // 0.031062847801119776
    (
        &[
            Some(f64::NEG_INFINITY),
            Some(f64::NEG_INFINITY),
            Some(f64::NEG_INFINITY),
            Some(f64::NEG_INFINITY),
            Some(f64::NEG_INFINITY),
        ],
        0x3f9f7d8da3f99ab3,
    ), // 0.030752385266533632
    (
        &[Some(44.65000001), Some(2.88), Some(4.82), Some(8.644), Some(11.74)],
        0x3f96893c5a2b7448,
    ), // 0.022007887843632085
    (&[Some(12.3), None, Some(5.0), Some(1.0), None], 0x3f987e3ba9af0bf6), // 0.023919040900874898
];
const QUARTERLY: &[(&[Option<f64>], u64)] = &[
    (&[Some(3.04), Some(13.28), Some(37.88), Some(2.57)], 0x3f8fe916a711dbdb), // 0.015581299756588443
    (&[None, None, None, None], 0x3f8d6fbaf91d0007),                           // 0.01437326500638393
    (&[Some(0.0), Some(100.0), Some(0.0), Some(30.0)], 0x3f8cd36448e497eb),    // 0.014075072741046987
    (
        &[Some(4.3000001), Some(17.45), Some(51.91), Some(25.99)],
        0x3f8f287c4f10cb57,
    ), // 0.015213938868418415
    (
        &[
            Some(f64::NEG_INFINITY),
            Some(f64::INFINITY),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
        ],
        0x3f8f6108df58d1a3,
    ), // 0.015321797672279319
    (&[Some(10.0), None, Some(60.0), Some(16.1)], 0x3f8efb766cc10de9),         // 0.015128064340507801
];

fn check(id: &str, cases: &[(&[Option<f64>], u64)]) {
    let registry = Registry::load(&committed_artifacts_dir(), &cpu()).expect("the committed artifacts load");
    let model = registry.get(&id.parse().unwrap()).expect("the scorecard is registered");
    let rows: Vec<Vec<Option<f64>>> = cases.iter().map(|(row, _)| row.to_vec()).collect();
    let outputs = model.score_batch(&rows).unwrap();
    for ((row, bits), output) in cases.iter().zip(&outputs) {
        assert_eq!(
            output.pd.to_bits(),
            *bits,
            "{id} {row:?}: got {} expected {}",
            output.pd,
            f64::from_bits(*bits)
        );
    }
    // Batch composition does not change a row's result.
    for (row, bits) in cases {
        assert_eq!(model.score_batch(&[row.to_vec()]).unwrap()[0].pd.to_bits(), *bits);
    }
}

#[test]
fn the_annual_scorecard_reproduces_accunode_bit_for_bit() {
    check("annual/accunode-scorecard@1", ANNUAL);
}

#[test]
fn the_quarterly_scorecard_reproduces_accunode_bit_for_bit() {
    check("quarterly/accunode-scorecard@1", QUARTERLY);
}
