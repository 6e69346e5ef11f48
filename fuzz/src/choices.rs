//! Decisions read from the fuzzer's bytes, for targets that drive a state machine with a
//! sequence of operations (what `arbitrary::Unstructured` does; that crate is not here).
//! Once the bytes run out every read gives zero, so any input is a complete program.

/// A cursor over the input, handing out small numbers and byte strings.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Reads decisions from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 256 {
            self.byte() as usize % n
        } else {
            self.u16() as usize % n
        }
    }

    /// A yes or no.
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A byte string of at most `max` bytes: a length byte, then the bytes.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = (self.byte() as usize).min(max).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_then_zeroes() {
        let mut c = Choices::new(&[1, 2, 3, 2, 9, 9, 7]);
        assert_eq!(c.byte(), 1);
        assert_eq!(c.u16(), 0x0203);
        assert_eq!(c.bytes(8), &[9, 9]);
        assert_eq!(c.rest(), &[7]);
        assert!(c.is_empty());
        assert_eq!(c.u32(), 0);
        assert!(c.bytes(8).is_empty());
    }
}
