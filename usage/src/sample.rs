//! Random sampling for the trace generator and the tests: Walker's alias
//! method (O(1) draws from a fixed discrete distribution), Zipf popularity,
//! and standard normal draws (Box–Muller).

use rand::Rng;

/// Draws indices with probability proportional to their weights.
#[derive(Debug, Clone, Default)]
pub(crate) struct AliasTable {
    prob: Vec<f64>,
    alias: Vec<u32>,
    small: Vec<u32>,
    large: Vec<u32>,
}

impl AliasTable {
    /// Rebuilds the table for `weights` (non-negative, not all zero), reusing its memory.
    pub(crate) fn rebuild(&mut self, weights: &[f64]) {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        assert!(n > 0 && total > 0.0, "an alias table needs a positive weight");
        self.prob.clear();
        self.prob.extend(weights.iter().map(|w| w * n as f64 / total));
        self.alias.clear();
        self.alias.resize(n, 0);
        self.small.clear();
        self.large.clear();
        for (i, &p) in self.prob.iter().enumerate() {
            if p < 1.0 {
                self.small.push(i as u32);
            } else {
                self.large.push(i as u32);
            }
        }
        while let (Some(&s), Some(&l)) = (self.small.last(), self.large.last()) {
            self.small.pop();
            self.alias[s as usize] = l;
            self.prob[l as usize] -= 1.0 - self.prob[s as usize];
            if self.prob[l as usize] < 1.0 {
                self.large.pop();
                self.small.push(l);
            }
        }
        // Leftovers are 1 up to rounding.
        for &i in self.small.iter().chain(&self.large) {
            self.prob[i as usize] = 1.0;
        }
    }

    /// One index.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> usize {
        let i = rng.random_range(0..self.prob.len());
        if rng.random::<f64>() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// Zipf popularity over `n` ranks: rank `r` (0-based) has weight `1/(r+1)^s`.
pub(crate) fn zipf_weights(n: usize, s: f64) -> Vec<f64> {
    (1..=n).map(|r| (r as f64).powf(-s)).collect()
}

/// Draws ranks from a Zipf distribution.
#[cfg(test)]
pub(crate) struct Zipf(AliasTable);

#[cfg(test)]
impl Zipf {
    /// Zipf(`s`) over `n` ranks.
    pub(crate) fn new(n: usize, s: f64) -> Self {
        let mut table = AliasTable::default();
        table.rebuild(&zipf_weights(n, s));
        Zipf(table)
    }

    /// One rank (0 is the most popular).
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> usize {
        self.0.sample(rng)
    }
}

/// A standard normal draw (Box–Muller).
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn alias_draws_follow_the_weights() {
        let weights = [1.0, 0.0, 3.0, 6.0];
        let mut table = AliasTable::default();
        table.rebuild(&weights);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[table.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (count, weight) in counts.iter().zip(weights) {
            let expected = 100_000.0 * weight / 10.0;
            assert!((*count as f64 - expected).abs() < 0.03 * 100_000.0, "{counts:?}");
        }
    }

    #[test]
    fn normal_draws_have_mean_zero_and_unit_variance() {
        let mut rng = StdRng::seed_from_u64(2);
        let draws: Vec<f64> = (0..50_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "{mean} {var}");
    }
}
