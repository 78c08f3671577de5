//! Integration tests, built into one binary. Each module is one area:
mod harness; // shared: engine check, loopback registry, test images
