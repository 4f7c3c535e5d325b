package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Parameter is an SSM parameter's state; all of them live in ssm/REGION.json.
type Parameter struct {
	Name, Type, Value string
	Version           int
	KeyID             string `json:",omitempty"`
}

// ssm answers put-parameter and get-parameter. A SecureString's value is
// returned only with --with-decryption (else as the CLI shows it: encrypted,
// here a placeholder). Values given as file://PATH are read from PATH, as
// the CLI does.
func ssm(c *call) (any, error) {
	file := filepath.Join(c.state, "ssm", c.region+".json")
	params := map[string]Parameter{}
	if _, err := readJSON(file, &params); err != nil {
		return nil, err
	}
	name := c.opt("name")
	op := opName(c.op)
	switch c.op {
	case "put-parameter":
		value := c.opt("value")
		if p, ok := strings.CutPrefix(value, "file://"); ok {
			raw, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("--value: unable to load paramfile %s: %w", value, err)
			}
			value = string(raw)
		}
		typ := c.opt("type")
		if !strings.HasPrefix(name, "/") || value == "" || (typ != "String" && typ != "SecureString" && typ != "StringList") {
			return nil, &apiError{"ValidationException", op, "bad name, value or type"}
		}
		if len(value) > 4096 {
			return nil, &apiError{"ValidationException", op, "value longer than 4096 characters (standard tier)"}
		}
		old, exists := params[name]
		_, overwrite := c.opts["overwrite"]
		if exists && !overwrite {
			return nil, &apiError{"ParameterAlreadyExists", op, "The parameter already exists. To overwrite this value, set the overwrite option in the request to true."}
		}
		p := Parameter{Name: name, Type: typ, Value: value, Version: old.Version + 1, KeyID: c.opt("key-id")}
		if typ == "SecureString" && p.KeyID == "" {
			p.KeyID = "alias/aws/ssm"
		}
		params[name] = p
		if err := writeJSON(file, params); err != nil {
			return nil, err
		}
		return map[string]any{"Version": p.Version, "Tier": "Standard"}, nil
	case "get-parameter":
		p, ok := params[name]
		if !ok {
			return nil, &apiError{"ParameterNotFound", op, ""}
		}
		value := p.Value
		if _, decrypt := c.opts["with-decryption"]; p.Type == "SecureString" && !decrypt {
			value = "AQICAHencrypted"
		}
		return map[string]any{"Parameter": map[string]any{"Name": p.Name, "Type": p.Type, "Value": value,
			"Version": p.Version, "ARN": "arn:aws:ssm:" + c.region + ":" + Account + ":parameter" + p.Name}}, nil
	}
	return nil, errUnknown
}
