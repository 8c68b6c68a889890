#![no_std]
// This file exists so that notify-user can declare a build-dependency on this crate: cargo then
// rebuilds the user side whenever the BPF programs change.
