//! A checked reader and a writer over one byte order, shared by the client and ring codecs.
//!
//! Every read is bounds-checked and returns [`WireError::Truncated`] instead of panicking;
//! [`Reader::finish`] refuses leftover bytes, so a decoder accepts exactly one layout.

use crate::codec::Endian;
use crate::ring::WireError;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    endian: Endian,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], endian: Endian, what: &'static str) -> Reader<'a> {
        Reader {
            bytes,
            at: 0,
            endian,
            what,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                what: self.what,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.take(N)
            .map(|b| b.try_into().expect("take returned N bytes"))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(self.endian.read_u32(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        Ok(self.endian.read_i32(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, WireError> {
        Ok(self.endian.read_u16(self.array()?) as i16)
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes {
                what: self.what,
                extra,
            }),
        }
    }
}

/// A count read from the wire, as a `usize` if it is in `0..=max`.
pub(crate) fn checked_count(
    value: i64,
    what: &'static str,
    max: usize,
) -> Result<usize, WireError> {
    let count = usize::try_from(value).map_err(|_| WireError::Negative { what, value })?;
    if count > max {
        return Err(WireError::TooMany {
            what,
            value: count,
            max,
        });
    }
    Ok(count)
}

/// A length or count to write into an int16 field, refused if it does not fit `max`.
pub(crate) fn i16_count(len: usize, what: &'static str, max: usize) -> Result<i16, WireError> {
    let max = max.min(i16::MAX as usize);
    if len > max {
        return Err(WireError::TooMany {
            what,
            value: len,
            max,
        });
    }
    Ok(len as i16)
}

pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    endian: Endian,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, endian: Endian) -> Writer<'a> {
        Writer { out, endian }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&self.endian.u32_bytes(v));
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.out.extend_from_slice(&self.endian.i32_bytes(v));
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.out.extend_from_slice(&self.endian.u16_bytes(v as u16));
    }
}
