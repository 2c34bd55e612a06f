//! Tests of the report artifacts.
