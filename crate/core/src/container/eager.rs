//! Eager loads: storages that view the mapped file are copied into buffers of their own.
//!
//! Storages whose byte ranges nest (legacy files' view storages are slices of a root
//! storage) stay nested after the copy: a contained range becomes a slice of its
//! container's copy, so views keep sharing memory. Copies run on rayon's threads.

use crate::bytes::ByteView;
use crate::value::Graph;
use rayon::prelude::*;

/// Replaces every storage that lives in `source`'s backing with an owned copy.
pub fn own_storages(graph: &mut Graph, source: &ByteView) {
    // (storage index, start, end) of the storages inside the file, outermost first.
    let mut ranges: Vec<(usize, usize, usize)> = graph
        .storages
        .iter()
        .enumerate()
        .filter(|(_, st)| st.data.same_backing(source))
        .map(|(i, st)| {
            let start = st.data.offset_in_backing();
            (i, start, start + st.data.len())
        })
        .collect();
    ranges.sort_by_key(|&(_, start, end)| (start, std::cmp::Reverse(end)));
    // Roots: ranges not contained in an earlier root.
    let mut roots: Vec<(usize, usize, usize)> = Vec::new();
    let mut parent: Vec<(usize, usize)> = Vec::new(); // (storage index, root position)
    for &(i, start, end) in &ranges {
        match roots.last() {
            Some(&(_, rs, re)) if start >= rs && end <= re && end > start => {
                parent.push((i, roots.len() - 1));
            }
            _ => {
                roots.push((i, start, end));
                parent.push((i, roots.len() - 1));
            }
        }
    }
    let copies: Vec<ByteView> = roots
        .par_iter()
        .map(|&(i, _, _)| {
            graph
                .storages
                .get(i)
                .map(|st| ByteView::from_vec(st.data.as_slice().to_vec()))
                .unwrap_or_else(ByteView::empty)
        })
        .collect();
    for (i, root_pos) in parent {
        let (Some(&(_, root_start, _)), Some(copy)) = (roots.get(root_pos), copies.get(root_pos))
        else {
            continue;
        };
        if let Some(st) = graph.storages.get_mut(i) {
            let start = st.data.offset_in_backing() - root_start;
            if let Some(view) = copy.slice(start..start + st.data.len()) {
                st.data = view;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::value::Storage;

    fn storage(data: ByteView) -> Storage {
        Storage {
            key: "k".into(),
            dtype: DType::UInt8,
            untyped: false,
            numel: data.len() as u64,
            location: "cpu".into(),
            data,
        }
    }

    #[test]
    fn copies_detach_from_the_file_and_nested_ranges_stay_shared() {
        let file = ByteView::from_vec((0u8..100).collect());
        let other = ByteView::from_vec(vec![7; 4]);
        let mut g = Graph::new();
        g.add_storage(storage(file.slice(10..50).unwrap())); // root
        g.add_storage(storage(file.slice(20..30).unwrap())); // view inside it
        g.add_storage(storage(file.slice(60..70).unwrap())); // another root
        g.add_storage(storage(other.clone())); // not from the file
        own_storages(&mut g, &file);
        for st in &g.storages[..3] {
            assert!(!st.data.same_backing(&file));
        }
        assert!(g.storages[0].data.same_backing(&g.storages[1].data));
        assert!(!g.storages[0].data.same_backing(&g.storages[2].data));
        assert!(g.storages[3].data.same_backing(&other));
        assert_eq!(
            g.storages[1].data.as_slice(),
            &(20u8..30).collect::<Vec<_>>()[..]
        );
        assert_eq!(
            g.storages[2].data.as_slice(),
            &(60u8..70).collect::<Vec<_>>()[..]
        );
    }
}
