package api

import (
	"maps"
	"slices"
)

// keysOfBoth returns the keys of a and b, sorted, each once.
func keysOfBoth[V any](a, b map[string]V) []string {
	set := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		set[k] = struct{}{}
	}
	for k := range b {
		set[k] = struct{}{}
	}
	return slices.Sorted(maps.Keys(set))
}
