//! Two-sample drift tests between a reference and a current sample, the automatic choice of
//! test per column, multiple-testing correction and the dataset verdict.

pub mod binned;
pub mod ks;
