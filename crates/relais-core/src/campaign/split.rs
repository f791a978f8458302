//! Who gets which variant of a campaign, and which variant of an A/B test wins.
//!
//! Each recipient falls in a bucket (0 to 9,999) computed from the campaign and contact ids
//! alone, so a campaign taken up again after a crash puts everyone where they were. With
//! an A/B test, the first `test_share` of the buckets is the test group, split between the
//! variants by weight; the others wait for the winner. Without one, all buckets are split.

/// Buckets a campaign's recipients fall in.
pub const BUCKETS: u32 = 10_000;

/// The bucket of a recipient (FNV-1a of both ids: stable across versions and platforms,
/// unlike the standard library's hasher).
pub fn bucket(campaign_id: &str, contact_id: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in campaign_id
        .bytes()
        .chain(std::iter::once(0))
        .chain(contact_id.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // The low bits of FNV mix poorly: fold the high half in first.
    let folded = hash ^ (hash >> 32);
    u32::try_from(folded % u64::from(BUCKETS)).unwrap_or(0)
}

/// Where a recipient goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// The variant of this index.
    Variant(usize),
    /// The rest of an A/B test: they get the winner.
    Rest,
}

/// How a campaign's recipients are split: variant weights, and the share of them tested
/// first when there is an A/B test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    weights: Vec<u32>,
    /// Test group size in buckets, with an A/B test.
    test_buckets: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a variant's weight must be at least 1")]
    ZeroWeight,
    #[error("an A/B test needs at least two variants")]
    TooFewVariants,
    #[error("the test share must be more than 0 and less than 1 (0.2 tests 20 % first)")]
    Share,
}

impl Split {
    /// `weights` of the variants (one when there are none); `test_share` (0 < share < 1)
    /// when the variants are tested on a share of the recipients first.
    pub fn new(weights: Vec<u32>, test_share: Option<f64>) -> Result<Split, SplitError> {
        if weights.contains(&0) {
            return Err(SplitError::ZeroWeight);
        }
        let weights = if weights.is_empty() { vec![1] } else { weights };
        let test_buckets = match test_share {
            None => None,
            Some(share) => {
                if weights.len() < 2 {
                    return Err(SplitError::TooFewVariants);
                }
                if !(share > 0.0 && share < 1.0) {
                    return Err(SplitError::Share);
                }
                // At least one bucket per variant, and one left for the rest.
                let buckets = (share * f64::from(BUCKETS)).round() as u32;
                Some(buckets.clamp(weights.len() as u32, BUCKETS - 1))
            }
        };
        Ok(Split {
            weights,
            test_buckets,
        })
    }

    pub fn variants(&self) -> usize {
        self.weights.len()
    }

    pub fn is_ab_test(&self) -> bool {
        self.test_buckets.is_some()
    }

    pub fn assign(&self, bucket: u32) -> Assignment {
        let span = self.test_buckets.unwrap_or(BUCKETS);
        if bucket >= span {
            return Assignment::Rest;
        }
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        // Where the bucket falls on the weights' scale, proportionally.
        let point = u64::from(bucket) * total / u64::from(span);
        let mut upto = 0u64;
        for (index, weight) in self.weights.iter().enumerate() {
            upto += u64::from(*weight);
            if point < upto {
                return Assignment::Variant(index);
            }
        }
        Assignment::Variant(self.weights.len() - 1)
    }
}

/// What an A/B test's winner is chosen by: the share of each variant's messages that got
/// this far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WinMetric {
    Delivered,
    Read,
    Replied,
    /// A tracked link of the message was clicked.
    Clicked,
    /// A conversion event was credited to the message.
    Converted,
}

/// How one variant did in the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantScore {
    /// Messages of the variant stored (not refused).
    pub sent: i64,
    /// Of them, those that reached the metric.
    pub hits: i64,
}

/// The index of the variant with the best rate; on a tie, the first of them (the order
/// the campaign lists them in), so the choice never depends on the store's row order.
pub fn choose_winner(scores: &[VariantScore]) -> usize {
    let mut best = 0;
    for (index, score) in scores.iter().enumerate().skip(1) {
        let current = &scores[best];
        // a/b > c/d  ⇔  a·d > c·b, with zero sends counting as a rate of zero.
        let better = if score.sent == 0 {
            false
        } else if current.sent == 0 {
            score.hits > 0
        } else {
            i128::from(score.hits) * i128::from(current.sent)
                > i128::from(current.hits) * i128::from(score.sent)
        };
        if better {
            best = index;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_stays_in_their_bucket_and_buckets_spread_evenly() {
        assert_eq!(bucket("c1", "contact-a"), bucket("c1", "contact-a"));
        assert_ne!(bucket("c1", "contact-a"), bucket("c2", "contact-a"));
        let mut counts = [0u32; 10];
        for i in 0..20_000 {
            counts[(bucket("camp", &format!("0190-{i:08}")) / 1000) as usize] += 1;
        }
        for count in counts {
            assert!((1_700..2_300).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn weights_split_the_recipients_in_proportion() {
        let split = Split::new(vec![1, 3], None).unwrap();
        let mut got = [0u32; 2];
        for b in 0..BUCKETS {
            match split.assign(b) {
                Assignment::Variant(i) => got[i] += 1,
                Assignment::Rest => panic!("no test, no rest"),
            }
        }
        assert_eq!(got, [2_500, 7_500]);
    }

    #[test]
    fn an_ab_test_sends_variants_to_its_share_and_keeps_the_rest_waiting() {
        let split = Split::new(vec![1, 1], Some(0.2)).unwrap();
        let mut got = [0u32; 3];
        for b in 0..BUCKETS {
            match split.assign(b) {
                Assignment::Variant(i) => got[i] += 1,
                Assignment::Rest => got[2] += 1,
            }
        }
        assert_eq!(got, [1_000, 1_000, 8_000]);
        assert_eq!(
            Split::new(vec![1], Some(0.2)),
            Err(SplitError::TooFewVariants)
        );
        assert_eq!(Split::new(vec![1, 1], Some(1.0)), Err(SplitError::Share));
        assert_eq!(Split::new(vec![0, 1], None), Err(SplitError::ZeroWeight));
    }

    #[test]
    fn the_best_rate_wins_and_a_tie_goes_to_the_first_variant() {
        let s = |sent, hits| VariantScore { sent, hits };
        assert_eq!(choose_winner(&[s(100, 10), s(100, 30)]), 1);
        assert_eq!(choose_winner(&[s(100, 30), s(10, 3)]), 0);
        assert_eq!(choose_winner(&[s(0, 0), s(10, 1)]), 1);
        assert_eq!(choose_winner(&[s(10, 0), s(0, 0)]), 0);
        assert_eq!(choose_winner(&[s(50, 5), s(100, 10), s(100, 11)]), 2);
    }
}
