package spec

import (
	"encoding/json"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("90s",
// "5m", "1h30m"); "0" means zero.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it like 30s, 5m or 1h30m", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative: durations must be 0 or more", s)
	}
	return Duration(v), nil
}

// checkScalar implements scalarChecker: the strict walker calls it with the
// raw YAML value so that a bad duration is reported with its field path.
func (Duration) checkScalar(n *yaml.Node) error {
	if n.Tag != "!!str" && n.Tag != "!!int" {
		return fmt.Errorf("must be a duration such as 30s or 5m, got %s", describe(n))
	}
	_, err := parseDuration(n.Value)
	return err
}

// UnmarshalYAML decodes a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
