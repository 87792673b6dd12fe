//! The `roundrobin` schedule: smooth weighted round robin expanded into one
//! cycle at build time, so selecting is an index into a slice.

/// One cycle of smooth weighted round robin over `(server index, weight)`.
///
/// Each step every server earns its weight in credit; the richest (the
/// earliest in the list on a tie) is picked and pays the total weight. Over a
/// cycle of `sum(weights)` steps each server appears `weight` times, spread out:
/// weights 3:1 give `a a b a`, never `a a a b`.
pub(super) fn smooth_cycle(members: &[(usize, u32)]) -> Vec<usize> {
    let total: i64 = members.iter().map(|&(_, w)| i64::from(w)).sum();
    let mut credit = vec![0i64; members.len()];
    let mut cycle = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (k, &(_, weight)) in members.iter().enumerate() {
            credit[k] += i64::from(weight);
            if credit[k] > credit[best] {
                best = k;
            }
        }
        credit[best] -= total;
        cycle.push(members[best].0);
    }
    cycle
}

/// Greatest common divisor of the weights (1 for an empty list), to keep
/// schedules and rings as small as the weight ratios allow.
pub(super) fn weight_gcd(weights: impl IntoIterator<Item = u32>) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    weights.into_iter().fold(0, gcd).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_three_to_one_interleave() {
        assert_eq!(smooth_cycle(&[(0, 3), (1, 1)]), [0, 0, 1, 0]);
    }

    #[test]
    fn equal_weights_alternate_in_order() {
        assert_eq!(smooth_cycle(&[(4, 1), (7, 1), (9, 1)]), [4, 7, 9]);
    }

    #[test]
    fn each_server_appears_weight_times_and_never_bunches() {
        let members = [(0, 5), (1, 1), (2, 1)];
        let cycle = smooth_cycle(&members);
        assert_eq!(cycle.len(), 7);
        for (index, weight) in members {
            assert_eq!(
                cycle.iter().filter(|&&i| i == index).count(),
                weight as usize
            );
        }
        assert_eq!(cycle, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn gcd_reduces_weights() {
        assert_eq!(weight_gcd([100, 200, 300]), 100);
        assert_eq!(weight_gcd([3, 4]), 1);
        assert_eq!(weight_gcd([]), 1);
    }

    #[test]
    fn empty_schedule() {
        assert!(smooth_cycle(&[]).is_empty());
    }
}
