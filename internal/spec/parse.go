package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrNewerAPIVersion is returned (wrapped) for a spec written for a newer
// major version of berth than this one.
var ErrNewerAPIVersion = errors.New("spec needs a newer berth")

// ParseFile reads and parses the specs in a YAML file (several documents
// may be separated by "---"). Errors name the file.
func ParseFile(path string) ([]*App, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	apps, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return apps, nil
}

// Parse decodes every YAML document in data strictly, applies defaults and
// validates each app. The error lists every problem, each with its path.
func Parse(data []byte) ([]*App, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var apps []*App
	for doc := 0; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not valid YAML: %w", err)
		}
		app, err := parseDocument(&n)
		if err != nil {
			if doc > 0 || len(apps) > 0 {
				return nil, fmt.Errorf("document %d: %w", doc+1, err)
			}
			return nil, err
		}
		apps = append(apps, app)
	}
	if len(apps) == 0 {
		return nil, errors.New("no app spec found (the file is empty)")
	}
	return apps, nil
}

func parseDocument(n *yaml.Node) (*App, error) {
	if err := checkAPIVersion(n); err != nil {
		return nil, err
	}
	var errs Errors
	checkNode(n, reflect.TypeFor[App](), "", &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	var app App
	if err := n.Decode(&app); err != nil {
		return nil, err
	}
	app.SetDefaults()
	if err := app.Validate(); err != nil {
		return nil, err
	}
	return &app, nil
}

// checkAPIVersion refuses a document without apiVersion, with another
// format's apiVersion, or with a newer major version.
func checkAPIVersion(doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return FieldError{Line: root.Line, Msg: "an app spec must be a mapping of fields (apiVersion, name, image, ...)"}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "apiVersion" {
			continue
		}
		v := root.Content[i+1]
		major, ok := strings.CutPrefix(v.Value, "berth/v")
		n, err := strconv.Atoi(major)
		if !ok || err != nil || n < 1 {
			return FieldError{Path: "apiVersion", Line: v.Line, Msg: fmt.Sprintf("must be %q, got %q", APIVersion, v.Value)}
		}
		if n > 1 {
			return FieldError{Path: "apiVersion", Line: v.Line, Err: ErrNewerAPIVersion,
				Msg: fmt.Sprintf("%q is newer than this berth reads (%s): upgrade berth", v.Value, APIVersion)}
		}
		return nil
	}
	return FieldError{Path: "apiVersion", Line: root.Line, Msg: fmt.Sprintf("missing: add \"apiVersion: %s\" at the top", APIVersion)}
}
