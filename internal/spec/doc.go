// Package spec is berth's app spec: the short YAML document an operator
// writes (image, ports, instances, domains, idle timeout, ...).
//
// Parse decodes it strictly (unknown fields are errors with a "did you mean"
// suggestion, wrong types name the field), applies defaults, and runs
// Validate, which reports every problem at once, each with its field path.
// docs/spec.md documents every field.
package spec
