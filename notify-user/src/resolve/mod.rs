//! Owner resolution: from a damaged dax range to the ready filesystem that holds it, the owners
//! of its blocks (GETFSMAP), their paths, and the processes whose mappings cover them.

pub mod fiemap;
pub mod fsmap;
pub mod geometry;
pub mod mappers;
pub mod maps;
pub mod owners;
pub mod paths;
pub mod procmap;
pub mod site;
