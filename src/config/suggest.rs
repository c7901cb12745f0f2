//! The closest known key to one the node does not know, for the message that refuses it.
//!
//! An unknown key stops the node (in the file and in the environment alike) rather than being
//! ignored, because a typo would otherwise run the node with a default the operator did not
//! choose. The refusal is only useful if it says what to write instead: the nearest key of the
//! same table (`nmae` → `name`), or the section a key belongs to when it sits in another one
//! (`concurrency` under `[relay]` → `[engine]`). No key has been renamed so far; a future rename
//! keeps old files working with `#[serde(alias = "…")]` on the new field, and this module is the
//! fallback for everything else.

/// The candidate nearest to `unknown`, if one is near enough to be a likely typo: one edit
/// (a letter missing, extra, changed, or two swapped), or up to three in a long key, or a known
/// key that `unknown` abbreviates. Case is ignored: TOML keys are case-sensitive, and ours are
/// all lower case.
pub(crate) fn closest<'a>(unknown: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (distance(&unknown, candidate), candidate))
        .filter(|(d, candidate)| {
            *d <= 1
                || (*d <= 3 && d * 3 <= unknown.len())
                || (unknown.len() >= 4 && candidate.starts_with(&unknown))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// The optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours each count one (a swap is the commonest typo, `nmae`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: the distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key() {
        let node = ["name", "public_url", "listen", "data_dir"];
        assert_eq!(closest("nmae", node), Some("name"));
        assert_eq!(closest("public-url", node), Some("public_url"));
        assert_eq!(closest("listn", node), Some("listen"));
        assert_eq!(closest("data", node), Some("data_dir"));
        assert_eq!(closest("NAME", node), Some("name"));
    }

    #[test]
    fn unrelated_words_find_nothing() {
        assert_eq!(closest("colour", ["name", "public_url", "listen"]), None);
        assert_eq!(closest("x", ["name"]), None);
        assert_eq!(closest("anything", []), None);
    }

    #[test]
    fn distance_counts_a_swap_as_one() {
        assert_eq!(distance("nmae", "name"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
