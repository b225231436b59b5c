//! Compact sorting for the size-tuned wasm build.
//!
//! `core`'s sorts (driftsort, ipnsort, their small-sort networks) are fast but large, and each
//! `(element type, comparator)` pair is a separate copy of them: about 4 KB of wasm each, and the
//! engine module (`make pkg`, the `Mnemo` class) carried some 20 of them (68 KB). The functions
//! here are one introsort (median-of-three quicksort, insertion sort below 16 elements, heapsort
//! when the recursion gets too deep: O(n log n) worst case) instantiated **per element type only**:
//! the comparator is passed as `&mut dyn FnMut`, so call sites with different closures share the
//! code. Sorting plain `u64`s (ids, the largest sorts at open) keeps `core`'s `sort_unstable`, a
//! single instance.
//!
//! [`sort_by`] is not stable: give it a total order (ties broken by a unique key) when the order
//! of equal elements matters. [`sort_stable_by_key`] is an insertion sort, for short lists only.

use std::cmp::Ordering;

/// Below this length a slice is insertion-sorted.
const SMALL: usize = 16;

/// Sort `v` by `cmp` (not stable; `cmp` must be a total order for a deterministic result).
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    let less: &mut Less<'_, T> = &mut |a, b| cmp(a, b) == Ordering::Less;
    introsort(v, less);
}

/// Sort `v` in ascending order (not stable). The comparison is inlined (one instance per
/// element type, no `dyn` call): for the row lists a recall sorts.
pub fn sort<T: Ord>(v: &mut [T]) {
    introsort(v, &mut T::lt);
}

/// Sort `v` by a key, keeping equal elements in their order. An insertion sort: O(n²), for
/// short lists.
pub fn sort_stable_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    let less: &mut Less<'_, T> = &mut |a, b| key(a) < key(b);
    insertion(v, less);
}

/// Reorder `v` so that `v[nth]` is the element a sort by `cmp` would put there, every element
/// before it is not greater and every element after it is not less (as
/// `slice::select_nth_unstable_by`). Panics when `nth >= v.len()`.
pub fn select_nth_by<T>(v: &mut [T], nth: usize, mut cmp: impl FnMut(&T, &T) -> Ordering) {
    assert!(nth < v.len(), "select_nth_by: index out of range");
    let less: &mut Less<'_, T> = &mut |a, b| cmp(a, b) == Ordering::Less;
    select(v, nth, less);
}

type Less<'a, T> = dyn FnMut(&T, &T) -> bool + 'a;

fn depth_limit(n: usize) -> u32 {
    2 * (usize::BITS - n.leading_zeros())
}

#[inline(never)]
fn introsort<T, F: FnMut(&T, &T) -> bool + ?Sized>(v: &mut [T], less: &mut F) {
    let limit = depth_limit(v.len());
    quicksort(v, less, limit);
}

fn quicksort<T, F: FnMut(&T, &T) -> bool + ?Sized>(mut v: &mut [T], less: &mut F, mut limit: u32) {
    loop {
        if v.len() <= SMALL {
            insertion(v, less);
            return;
        }
        if limit == 0 {
            heapsort(v, less);
            return;
        }
        limit -= 1;
        let p = partition(v, less);
        let (left, right) = v.split_at_mut(p);
        let right = &mut right[1..];
        // Recurse into the shorter side, loop on the longer: O(log n) stack.
        if left.len() < right.len() {
            quicksort(left, less, limit);
            v = right;
        } else {
            quicksort(right, less, limit);
            v = left;
        }
    }
}

#[inline(never)]
fn select<T, F: FnMut(&T, &T) -> bool + ?Sized>(mut v: &mut [T], mut nth: usize, less: &mut F) {
    let mut limit = depth_limit(v.len());
    loop {
        if v.len() <= SMALL {
            insertion(v, less);
            return;
        }
        if limit == 0 {
            heapsort(v, less);
            return;
        }
        limit -= 1;
        let p = partition(v, less);
        match nth.cmp(&p) {
            Ordering::Equal => return,
            Ordering::Less => v = &mut v[..p],
            Ordering::Greater => {
                nth -= p + 1;
                v = &mut v[p + 1..];
            }
        }
    }
}

/// Partition around the median of the first, middle and last elements; returns the pivot's final
/// index `p`: `v[..p]` are less than `v[p]`, `v[p + 1..]` are not less. `v.len() >= 3`.
fn partition<T, F: FnMut(&T, &T) -> bool + ?Sized>(v: &mut [T], less: &mut F) -> usize {
    let (a, b, c) = (0, v.len() / 2, v.len() - 1);
    let ab = less(&v[a], &v[b]);
    let bc = less(&v[b], &v[c]);
    let ac = less(&v[a], &v[c]);
    let m = if ab == bc {
        b
    } else if ab == ac {
        c
    } else {
        a
    };
    v.swap(0, m);
    let (pivot, rest) = v.split_first_mut().expect("partition of an empty slice");
    let (mut i, mut j) = (0, rest.len());
    loop {
        while i < j && less(&rest[i], pivot) {
            i += 1;
        }
        while i < j && !less(&rest[j - 1], pivot) {
            j -= 1;
        }
        if i >= j {
            break;
        }
        j -= 1;
        rest.swap(i, j);
        i += 1;
    }
    v.swap(0, i);
    i
}

fn insertion<T, F: FnMut(&T, &T) -> bool + ?Sized>(v: &mut [T], less: &mut F) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && less(&v[j], &v[j - 1]) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn heapsort<T, F: FnMut(&T, &T) -> bool + ?Sized>(v: &mut [T], less: &mut F) {
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift_down(v, start, n, less);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, less);
    }
}

fn sift_down<T, F: FnMut(&T, &T) -> bool + ?Sized>(
    v: &mut [T],
    mut node: usize,
    end: usize,
    less: &mut F,
) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(&v[child], &v[child + 1]) {
            child += 1;
        }
        if !less(&v[node], &v[child]) {
            return;
        }
        v.swap(node, child);
        node = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn cases() -> Vec<Vec<(u32, u32)>> {
        let mut rng = Rng::new(7);
        let mut out = Vec::new();
        for n in [0usize, 1, 2, 3, 15, 16, 17, 33, 100, 1000, 5000] {
            for spread in [1u64, 3, 1 << 20] {
                out.push(
                    (0..n)
                        .map(|i| ((rng.next_u64() % spread) as u32, i as u32))
                        .collect(),
                );
            }
            let asc: Vec<(u32, u32)> = (0..n as u32).map(|i| (i, i)).collect();
            out.push(asc.iter().rev().copied().collect());
            out.push(asc);
        }
        out
    }

    #[test]
    fn sort_matches_std() {
        for c in cases() {
            let mut a = c.clone();
            let mut b = c.clone();
            sort(&mut a);
            b.sort_unstable();
            assert_eq!(a, b);
            let mut a = c.clone();
            sort_by(&mut a, |x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
            b.sort_unstable_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn stable_by_key_keeps_order() {
        for c in cases().into_iter().filter(|c| c.len() <= 1000) {
            let mut a = c.clone();
            let mut b = c.clone();
            sort_stable_by_key(&mut a, |x| x.0);
            b.sort_by_key(|x| x.0);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn select_nth_partitions() {
        for c in cases().into_iter().filter(|c| !c.is_empty()) {
            let mut sorted = c.clone();
            sorted.sort_unstable();
            for nth in [0, c.len() / 3, c.len() - 1] {
                let mut a = c.clone();
                select_nth_by(&mut a, nth, |x, y| x.cmp(y));
                assert_eq!(a[nth], sorted[nth]);
                assert!(a[..nth].iter().all(|x| *x <= a[nth]));
                assert!(a[nth + 1..].iter().all(|x| *x >= a[nth]));
                a.sort_unstable();
                assert_eq!(a, sorted);
            }
        }
    }
}
