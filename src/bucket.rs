//! Grouping by a small integer key with a counting sort.

/// `items` grouped by key, stably (the items of one key keep their order): `start[k]..
/// start[k + 1]` of the returned list are key `k`'s, for `k < keys`. Items whose key is `keys`
/// or more are left out. Two passes over `items`, no per-key allocation.
pub(crate) fn by_key<T: Copy + Default>(
    keys: usize,
    items: impl Iterator<Item = (usize, T)> + Clone,
) -> (Vec<usize>, Vec<T>) {
    let mut start = vec![0usize; keys + 1];
    for (k, _) in items.clone() {
        if k < keys
            && let Some(c) = start.get_mut(k + 1)
        {
            *c += 1;
        }
    }
    for k in 0..keys {
        let prev = start.get(k).copied().unwrap_or(0);
        if let Some(c) = start.get_mut(k + 1) {
            *c += prev;
        }
    }
    let mut fill = start.clone();
    let mut grouped = vec![T::default(); start.last().copied().unwrap_or(0)];
    for (k, v) in items {
        if k < keys
            && let Some(p) = fill.get_mut(k)
        {
            if let Some(slot) = grouped.get_mut(*p) {
                *slot = v;
            }
            *p += 1;
        }
    }
    (start, grouped)
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_stably_and_leaves_out_keys_past_the_end() {
        let items = [(2, 'a'), (0, 'b'), (2, 'c'), (5, 'x'), (1, 'd'), (0, 'e')];
        let (start, grouped) = super::by_key(3, items.iter().copied());
        assert_eq!(start, vec![0, 2, 3, 5]);
        assert_eq!(grouped, vec!['b', 'e', 'd', 'a', 'c']);
        let (start, grouped) = super::by_key::<u8>(0, std::iter::empty());
        assert_eq!((start, grouped), (vec![0], vec![]));
    }
}
