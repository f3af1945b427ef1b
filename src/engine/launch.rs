//! What the GPU engine needs from a device: zeroed buffers, copies both ways
//! and kernel launches by name. CUDA implements it (`engine::cuda`); the
//! tests implement it with the same CUDA C compiled for the host, so the
//! whole GPU training step (every launch, argument list and buffer offset)
//! is checked against the CPU on machines without a GPU.

use anyhow::Result;
use std::marker::PhantomData;

/// A kernel argument: a device address (buffer + byte offset) or a scalar.
pub enum Arg<'a, B> {
    Ptr(&'a B, usize),
    Null,
    I32(i32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
}

// By hand: a derive would ask for `B: Copy`, but only a reference to B is held.
impl<B> Clone for Arg<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B> Copy for Arg<'_, B> {}

pub trait Device {
    /// A device allocation.
    type Buf;
    /// `bytes` of zeros.
    fn alloc(&self, bytes: usize) -> Result<Self::Buf>;
    fn upload(&self, dst: &mut Self::Buf, offset: usize, src: &[u8]) -> Result<()>;
    /// Waits for the launches before it.
    fn download(&self, src: &Self::Buf, offset: usize, dst: &mut [u8]) -> Result<()>;
    /// Launch `kernel` on a `grid` of blocks of `block` threads.
    fn launch(&self, kernel: &str, grid: [u32; 3], block: u32, args: &[Arg<'_, Self::Buf>]) -> Result<()>;
}

/// Plain numbers that cross to a device as bytes.
pub trait Pod: Copy + Default {}
impl Pod for f32 {}
impl Pod for f64 {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for u64 {}

fn bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: Pod types are plain numbers without padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

fn bytes_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; every bit pattern is a valid value of a Pod type.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

/// A typed device array of `len` elements.
pub struct DeviceVec<D: Device, T> {
    pub buf: D::Buf,
    pub len: usize,
    _t: PhantomData<T>,
}

impl<D: Device, T: Pod> DeviceVec<D, T> {
    pub fn zeros(dev: &D, len: usize) -> Result<Self> {
        Ok(DeviceVec { buf: dev.alloc(len.max(1) * size_of::<T>())?, len, _t: PhantomData })
    }

    pub fn from_slice(dev: &D, v: &[T]) -> Result<Self> {
        let mut d = Self::zeros(dev, v.len())?;
        d.write(dev, 0, v)?;
        Ok(d)
    }

    /// Copy `v` to elements `at..at + v.len()`.
    pub fn write(&mut self, dev: &D, at: usize, v: &[T]) -> Result<()> {
        assert!(at + v.len() <= self.len, "device write out of bounds");
        dev.upload(&mut self.buf, at * size_of::<T>(), bytes(v))
    }

    /// Elements `at..at + len`.
    pub fn read(&self, dev: &D, at: usize, len: usize) -> Result<Vec<T>> {
        assert!(at + len <= self.len, "device read out of bounds");
        let mut v = vec![T::default(); len];
        dev.download(&self.buf, at * size_of::<T>(), bytes_mut(&mut v))?;
        Ok(v)
    }

    /// The address of element `at`, as a kernel argument.
    pub fn at(&self, at: usize) -> Arg<'_, D::Buf> {
        assert!(at <= self.len, "device offset out of bounds");
        Arg::Ptr(&self.buf, at * size_of::<T>())
    }

    pub fn arg(&self) -> Arg<'_, D::Buf> {
        self.at(0)
    }
}
