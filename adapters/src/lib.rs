//! Sector adapters. The framework and the five sectors arrive with their own issue.
#![forbid(unsafe_code)]
