//! What is drawn for a batch when it is created, the same for both APIs: each request's fate,
//! the order the requests are processed in and the order their results are listed in.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::config::BatchConfig;

/// How one request of a batch turns out once processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Succeed,
    Fail,
    Expire,
}

/// What is drawn for a batch when it is created.
#[derive(Debug)]
pub struct Plan {
    /// By input position.
    pub fates: Vec<Fate>,
    /// Input positions in the order they are processed.
    pub processing: Vec<usize>,
    /// Input positions in the order results are listed.
    pub listing: Vec<usize>,
}

/// `pct` percent of `n`, rounded to the nearest whole request.
fn share(n: usize, pct: f64) -> usize {
    ((n as f64) * pct / 100.0).round() as usize
}

impl Plan {
    /// The plan of the `ordinal`-th batch (from 1) of an API, for `n` requests.
    pub fn draw(n: usize, config: &BatchConfig, ordinal: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(
            config
                .seed
                .wrapping_add(ordinal.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        let fail = share(n, config.fail_pct).min(n);
        let expire = share(n, config.expire_pct).min(n - fail);
        let mut picks: Vec<usize> = (0..n).collect();
        picks.shuffle(&mut rng);
        let mut fates = vec![Fate::Succeed; n];
        for &i in &picks[..fail] {
            fates[i] = Fate::Fail;
        }
        for &i in &picks[fail..fail + expire] {
            fates[i] = Fate::Expire;
        }
        let mut processing: Vec<usize> = (0..n).collect();
        processing.shuffle(&mut rng);
        let mut listing: Vec<usize> = (0..n).collect();
        listing.shuffle(&mut rng);
        Plan {
            fates,
            processing,
            listing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::config::test_config as config;

    #[test]
    fn plans_have_exact_shares_and_follow_the_seed() {
        let c = config(100, 10.0, 4.0);
        let p = Plan::draw(250, &c, 1);
        let count = |f| p.fates.iter().filter(|x| **x == f).count();
        assert_eq!((count(Fate::Fail), count(Fate::Expire)), (25, 10));
        assert_eq!(count(Fate::Succeed), 215);
        for order in [&p.processing, &p.listing] {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..250).collect::<Vec<_>>(), "a permutation");
            assert_ne!(*order, (0..250).collect::<Vec<_>>(), "not the input order");
        }
        let again = Plan::draw(250, &c, 1);
        assert_eq!((&p.fates, &p.listing), (&again.fates, &again.listing));
        let next = Plan::draw(250, &c, 2);
        assert_ne!(p.listing, next.listing, "each batch draws its own");
        let other_seed = Plan::draw(250, &BatchConfig { seed: 8, ..c }, 1);
        assert_ne!(p.listing, other_seed.listing);
        // Rounded to the nearest request, never more than the batch.
        let half = Plan::draw(1, &config(0, 50.0, 50.0), 1);
        assert_eq!(half.fates, vec![Fate::Fail]);
        assert!(Plan::draw(0, &c, 1).fates.is_empty());
    }
}
