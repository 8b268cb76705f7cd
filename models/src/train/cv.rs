//! Stratified k-fold splits, deterministic for a seed.

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

/// `k` folds of row indices; each class is shuffled with `seed` and dealt round-robin, so every fold holds
/// the same share of positives (±1).
pub fn stratified_folds(labels: &[u8], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for class in [1u8, 0] {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        for i in members {
            folds[next % k].push(i);
            next += 1;
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    folds
}

/// Everything but fold `i`.
pub fn complement(folds: &[Vec<usize>], i: usize) -> Vec<usize> {
    let mut rest: Vec<usize> = folds
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .flat_map(|(_, f)| f.clone())
        .collect();
    rest.sort_unstable();
    rest
}

/// A stratified split of `indices` into (train, holdout) with about `fraction` held out.
pub fn stratified_split(indices: &[usize], labels: &[u8], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let k = (1.0 / fraction).round().max(2.0) as usize;
    let local: Vec<u8> = indices.iter().map(|&i| labels[i]).collect();
    let folds = stratified_folds(&local, k, seed);
    let holdout: Vec<usize> = folds[0].iter().map(|&j| indices[j]).collect();
    let train: Vec<usize> = complement(&folds, 0).iter().map(|&j| indices[j]).collect();
    (train, holdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_rows_and_balance_the_classes() {
        let labels: Vec<u8> = (0..103).map(|i| u8::from(i % 10 == 0)).collect();
        let folds = stratified_folds(&labels, 10, 42);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        for fold in &folds {
            let positives = fold.iter().filter(|&&i| labels[i] == 1).count();
            assert!((1..=2).contains(&positives), "{positives}");
        }
        assert_eq!(folds, stratified_folds(&labels, 10, 42), "deterministic for a seed");
        assert_ne!(folds, stratified_folds(&labels, 10, 43));
    }

    #[test]
    fn a_split_holds_out_a_stratified_fraction() {
        let labels: Vec<u8> = (0..100).map(|i| u8::from(i < 20)).collect();
        let indices: Vec<usize> = (0..100).collect();
        let (train, holdout) = stratified_split(&indices, &labels, 0.1, 1);
        assert_eq!(train.len() + holdout.len(), 100);
        assert_eq!(holdout.iter().filter(|&&i| labels[i] == 1).count(), 2);
    }
}
