//! Mutations of an input: libFuzzer's and AFL's usual set (bit flips, interesting values,
//! arithmetic, inserted, erased, repeated and spliced ranges) and the operands of recent
//! comparisons written in place of each other.

use rand::Rng;
use rand::rngs::StdRng;

use crate::coverage;

/// Values that sit on boundaries: lengths, signs, sizes.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    4,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
];

/// Applies one to eight mutations to `data`, never growing it past `max_len`.
/// `other` is another input of the corpus to splice from.
pub fn mutate(data: &mut Vec<u8>, other: &[u8], max_len: usize, rng: &mut StdRng) {
    let rounds = 1 << rng.random_range(0..4);
    for _ in 0..rounds {
        mutate_once(data, other, max_len, rng);
    }
    data.truncate(max_len);
}

fn mutate_once(data: &mut Vec<u8>, other: &[u8], max_len: usize, rng: &mut StdRng) {
    if data.is_empty() {
        let n = rng.random_range(1..=16.min(max_len.max(1)));
        data.extend((0..n).map(|_| rng.random::<u8>()));
        return;
    }
    let len = data.len();
    match rng.random_range(0..12) {
        0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = rng.random_range(0..len);
            data[i] = rng.random();
        }
        2 => {
            let i = rng.random_range(0..len);
            data[i] =
                data[i].wrapping_add(rng.random_range(1..=35u8).wrapping_mul(if rng.random() {
                    1
                } else {
                    0xff
                }));
        }
        3 => write_number(
            data,
            INTERESTING[rng.random_range(0..INTERESTING.len())],
            rng,
        ),
        4 => {
            // Insert random bytes.
            let at = rng.random_range(0..=len);
            let n = rng.random_range(1..=16).min(max_len.saturating_sub(len));
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        5 => {
            // Erase a range.
            let at = rng.random_range(0..len);
            let n = rng.random_range(1..=(len - at).min(32));
            data.drain(at..at + n);
        }
        6 => {
            // Repeat a range somewhere else.
            let from = rng.random_range(0..len);
            let n = rng.random_range(1..=(len - from).min(64));
            let chunk = data[from..from + n].to_vec();
            let at = rng.random_range(0..=len);
            let n = chunk.len().min(max_len.saturating_sub(len));
            data.splice(at..at, chunk[..n].iter().copied());
        }
        7 | 8 if !other.is_empty() => {
            // Splice: a range of another input, inserted or written over.
            let from = rng.random_range(0..other.len());
            let n = rng.random_range(1..=(other.len() - from).min(128));
            let chunk = &other[from..from + n];
            let at = rng.random_range(0..=len);
            if rng.random() {
                let n = n.min(max_len.saturating_sub(len));
                data.splice(at..at, chunk[..n].iter().copied());
            } else {
                let end = (at + n).min(len);
                data[at..end].copy_from_slice(&chunk[..end - at]);
            }
        }
        9 | 10 => {
            // A recent comparison: find one operand in the input and write the other.
            if let Some(c) = coverage::comparison(rng.random::<u32>() as usize) {
                replace_operand(data, c, rng);
            }
        }
        _ => {
            let at = rng.random_range(0..len);
            data.truncate(at.max(1));
        }
    }
}

/// Writes `value` at a random place as 1, 2, 4 or 8 bytes, big- or little-endian.
fn write_number(data: &mut [u8], value: u64, rng: &mut StdRng) {
    let width = 1 << rng.random_range(0..4);
    if data.len() < width {
        return;
    }
    let at = rng.random_range(0..=data.len() - width);
    put(&mut data[at..at + width], value, rng.random());
}

fn put(slot: &mut [u8], value: u64, big: bool) {
    let bytes = if big {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    };
    let bytes = if big {
        &bytes[8 - slot.len()..]
    } else {
        &bytes[..slot.len()]
    };
    slot.copy_from_slice(bytes);
}

fn replace_operand(data: &mut [u8], c: coverage::Comparison, rng: &mut StdRng) {
    let w = c.width;
    if data.len() < w {
        return;
    }
    let (find, write) = if rng.random() { (c.a, c.b) } else { (c.b, c.a) };
    for big in [true, false] {
        let mut needle = [0u8; 8];
        put(&mut needle[..w], find, big);
        let start = rng.random_range(0..=data.len() - w);
        let hit = (start..=data.len() - w)
            .chain(0..start)
            .find(|&i| data[i..i + w] == needle[..w]);
        if let Some(i) = hit {
            put(&mut data[i..i + w], write, big);
            return;
        }
    }
    // Not found: write it somewhere anyway (a length or a type the input lacks).
    let at = rng.random_range(0..=data.len() - w);
    put(&mut data[at..at + w], write, rng.random());
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_stay_within_the_limit_and_change_the_input() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut changed = 0;
        for i in 0..10_000 {
            let mut d: Vec<u8> = (0..(i % 50) as u8).collect();
            let before = d.clone();
            mutate(&mut d, b"another input", 40, &mut rng);
            assert!(d.len() <= 40);
            changed += usize::from(d != before);
        }
        assert!(changed > 9_000, "{changed} of 10,000 changed");
    }

    #[test]
    fn numbers_are_written_in_either_order() {
        let mut slot = [0u8; 2];
        put(&mut slot, 0x1234, true);
        assert_eq!(slot, [0x12, 0x34]);
        put(&mut slot, 0x1234, false);
        assert_eq!(slot, [0x34, 0x12]);
    }
}
