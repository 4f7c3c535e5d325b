package main

import (
	"os"
	"testing"
)

// TestMain lets the test binary act as the berth binary when the code under
// test re-executes itself (post-start spawns "berth hook keeper").
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
