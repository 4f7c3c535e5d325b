package fleet

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// Requirements are a unit's [X-Fleet] options, with the specifiers %n,
// %N, %p and %i resolved for the unit's name.
type Requirements struct {
	MachineID string   // the machine it must run on
	MachineOf []string // units it must run next to (all of them)
	// Metadata are conditions on machine metadata: a machine must have
	// every key; for one key, the plain values are alternatives (one must
	// equal the machine's) and the comparisons ("<=4", "!=a") must all
	// hold.
	Metadata  map[string][]Condition
	Conflicts []string // globs of units it must not share a machine with
	Replaces  []string // units it takes the machine of, moving them away
	Global    bool     // runs on every machine whose metadata matches
}

// Condition is one MachineMetadata condition on a key.
type Condition struct {
	Op    string // "=", "==", "!=", "<", "<=", ">", ">="
	Value string
}

// options are the [X-Fleet] options berth knows, with fleet's deprecated
// spellings.
var options = map[string]string{
	"MachineID": "MachineID", "X-ConditionMachineID": "MachineID",
	"MachineOf": "MachineOf", "X-ConditionMachineOf": "MachineOf",
	"MachineMetadata": "MachineMetadata", "X-ConditionMachineMetadata": "MachineMetadata",
	"Conflicts": "Conflicts", "X-Conflicts": "Conflicts",
	"Global": "Global", "Replaces": "Replaces",
}

// ParseRequirements reads the [X-Fleet] section of a unit file for the
// unit named n (a template's instance resolves %i to its instance).
func ParseRequirements(n Name, content []byte) (Requirements, error) {
	var r Requirements
	opts, err := unit.DeserializeOptions(bytes.NewReader(content))
	if err != nil {
		return r, fmt.Errorf("%s: %w", n.Full, err)
	}
	spec := strings.NewReplacer("%n", n.Full, "%N", strings.TrimSuffix(n.Full, "."+n.Type), "%p", n.Prefix,
		"%i", n.Instance, "%%", "%")
	var other []string
	for _, o := range opts {
		if o.Section != "X-Fleet" {
			continue
		}
		name, ok := options[o.Name]
		if !ok {
			return r, fmt.Errorf("%s: [X-Fleet] %s is not an option fleet knows (MachineID, MachineOf, MachineMetadata, Conflicts, Global, Replaces)", n.Full, o.Name)
		}
		v := spec.Replace(strings.TrimSpace(o.Value))
		switch name {
		case "MachineID":
			r.MachineID = v
		case "MachineOf":
			r.MachineOf = append(r.MachineOf, strings.Fields(v)...)
		case "Conflicts":
			r.Conflicts = append(r.Conflicts, strings.Fields(v)...)
		case "Replaces":
			r.Replaces = append(r.Replaces, strings.Fields(v)...)
		case "Global":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return r, fmt.Errorf("%s: [X-Fleet] Global=%q: want true or false", n.Full, v)
			}
			r.Global = b
		case "MachineMetadata":
			if err := r.addMetadata(v); err != nil {
				return r, fmt.Errorf("%s: [X-Fleet] MachineMetadata=%s: %w", n.Full, v, err)
			}
		}
		if name != "MachineMetadata" && name != "Global" {
			other = append(other, name)
		}
	}
	for _, t := range r.MachineOf {
		if slices.Contains(r.Replaces, t) {
			return r, fmt.Errorf("%s: MachineOf and Replaces both name %s: it cannot run next to the unit it moves away", n.Full, t)
		}
	}
	if r.Global && len(other) > 0 {
		sort.Strings(other)
		return r, fmt.Errorf("%s: Global=true takes no other [X-Fleet] option than MachineMetadata (found %s)", n.Full, strings.Join(other, ", "))
	}
	return r, nil
}

// operators, longest first.
var operators = []string{"<=", ">=", "!=", "==", "<", ">", "="}

// addMetadata adds the pairs of one MachineMetadata line: "k=v", or
// several quoted ones ("region=us-east-1" "disk=ssd").
func (r *Requirements) addMetadata(line string) error {
	for _, pair := range strings.Fields(line) {
		pair = strings.Trim(pair, `"`)
		i := strings.IndexAny(pair, "<>!=")
		if i <= 0 {
			return fmt.Errorf("%q: want key=value (or key<=N, key>=N, key<N, key>N, key!=value)", pair)
		}
		key, rest := pair[:i], pair[i:]
		var c Condition
		for _, op := range operators {
			if strings.HasPrefix(rest, op) {
				c = Condition{Op: op, Value: rest[len(op):]}
				break
			}
		}
		if c.Op == "" || c.Value == "" {
			return fmt.Errorf("%q: want key=value (or key<=N, key>=N, key<N, key>N, key!=value)", pair)
		}
		if c.Op == "<" || c.Op == "<=" || c.Op == ">" || c.Op == ">=" {
			if _, err := strconv.Atoi(c.Value); err != nil {
				return fmt.Errorf("%q: %s compares integers", pair, c.Op)
			}
		}
		if r.Metadata == nil {
			r.Metadata = map[string][]Condition{}
		}
		r.Metadata[key] = append(r.Metadata[key], c)
	}
	return nil
}

// MatchesMetadata reports whether a machine's metadata meets the
// conditions: every key present; one of the key's plain values equal to
// the machine's, if it has any; every comparison true.
func (r Requirements) MatchesMetadata(md map[string]string) bool {
	for key, conds := range r.Metadata {
		have, ok := md[key]
		if !ok {
			return false
		}
		plain, matched := false, false
		for _, c := range conds {
			switch c.Op {
			case "=", "==":
				plain = true
				matched = matched || have == c.Value
			case "!=":
				if have == c.Value {
					return false
				}
			default:
				if !compare(have, c) {
					return false
				}
			}
		}
		if plain && !matched {
			return false
		}
	}
	return true
}

func compare(have string, c Condition) bool {
	h, err1 := strconv.Atoi(have)
	w, err2 := strconv.Atoi(c.Value)
	if err1 != nil || err2 != nil {
		return false
	}
	switch c.Op {
	case "<":
		return h < w
	case "<=":
		return h <= w
	case ">":
		return h > w
	}
	return h >= w
}
