//! Byte order and the small readers and writers every codec uses.

/// The byte order of whoever wrote a struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    Little,
    Big,
}

/// The endian marker bits of a type word (`ENDIAN_TYPE` in 3.17). A little-endian sender
/// sets both, a big-endian one clears both. The mask reads the same after a byte swap.
pub const ENDIAN_MARKER: u32 = 0x8000_0080;

impl Endian {
    /// The order of the machine we run on: what a C Spread built here would write.
    #[cfg(target_endian = "little")]
    pub const NATIVE: Endian = Endian::Little;
    #[cfg(target_endian = "big")]
    pub const NATIVE: Endian = Endian::Big;

    /// Which order wrote a type word, read from its raw bytes.
    ///
    /// Both marker bits set means little-endian, both clear big-endian. A word with one bit
    /// of each is treated as foreign to us, as a C peer on this host would (it tests "same
    /// order" and swaps otherwise).
    pub fn of_type_word(raw: [u8; 4]) -> Endian {
        let first = raw[0] & 0x80 != 0;
        let last = raw[3] & 0x80 != 0;
        match (first, last) {
            (true, true) => Endian::Little,
            (false, false) => Endian::Big,
            _ => Endian::NATIVE.swapped(),
        }
    }

    pub fn swapped(self) -> Endian {
        match self {
            Endian::Little => Endian::Big,
            Endian::Big => Endian::Little,
        }
    }

    /// The marker bits this order puts in a type word (as a logical value).
    pub fn marker(self) -> u32 {
        match self {
            Endian::Little => ENDIAN_MARKER,
            Endian::Big => 0,
        }
    }

    /// Re-stamps a logical type word with this order's marker (C's `Set_endian`).
    pub fn stamp(self, type_word: u32) -> u32 {
        (type_word & !ENDIAN_MARKER) | self.marker()
    }

    pub fn read_u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }

    pub fn read_i32(self, b: [u8; 4]) -> i32 {
        self.read_u32(b) as i32
    }

    pub fn read_u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    pub fn i32_bytes(self, v: i32) -> [u8; 4] {
        self.u32_bytes(v as u32)
    }

    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_symmetric_under_byte_swap() {
        assert_eq!(ENDIAN_MARKER.swap_bytes(), ENDIAN_MARKER);
    }

    #[test]
    fn type_words_name_their_writer() {
        // A SAFE multicast from a little-endian client: 0x800000a0.
        assert_eq!(Endian::of_type_word([0xa0, 0, 0, 0x80]), Endian::Little);
        // The same from a big-endian client: 0x00000020.
        assert_eq!(Endian::of_type_word([0, 0, 0, 0x20]), Endian::Big);
    }
}
