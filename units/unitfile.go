package units

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"slices"

	"github.com/coreos/go-systemd/v22/unit"
)

//go:embed templates/*
var templates embed.FS

// File is one rendered unit file.
type File struct {
	Name    string // unit file name, e.g. "paas-monitor@.service"
	Content []byte // the unit file, as written to disk
}

// sectionOrder is the order sections are written in.
var sectionOrder = []string{"Unit", "Service", "Socket", "Timer", "X-Fleet", "Install"}

// unitFile collects a unit's options: the embedded skeleton first, then the
// options computed from a spec.
type unitFile struct {
	opts []*unit.UnitOption
}

// loadTemplate reads an embedded skeleton.
func loadTemplate(name string) (*unitFile, error) {
	f, err := templates.Open("templates/" + name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return &unitFile{opts: opts}, nil
}

func (u *unitFile) add(section, name, value string) {
	u.opts = append(u.opts, unit.NewUnitOption(section, name, value))
}

// file serializes the unit with sections in a fixed order.
func (u *unitFile) file(name string) (File, error) {
	opts := slices.Clone(u.opts)
	rank := func(s string) int {
		if i := slices.Index(sectionOrder, s); i >= 0 {
			return i
		}
		return len(sectionOrder)
	}
	slices.SortStableFunc(opts, func(a, b *unit.UnitOption) int { return rank(a.Section) - rank(b.Section) })
	content, err := io.ReadAll(unit.Serialize(opts))
	if err != nil {
		return File{}, err
	}
	// Round trip: what we write must read back as exactly what we meant.
	back, err := unit.DeserializeOptions(bytes.NewReader(content))
	if err != nil {
		return File{}, fmt.Errorf("%s: rendered unit does not parse: %w", name, err)
	}
	if !unit.AllMatch(back, opts) {
		return File{}, fmt.Errorf("%s: rendered unit does not read back as written", name)
	}
	return File{Name: name, Content: content}, nil
}
