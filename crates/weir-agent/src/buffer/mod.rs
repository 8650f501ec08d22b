//! Buffers between the pipeline and each sink: records wait here until the
//! sink has acknowledged them.

pub mod disk;
