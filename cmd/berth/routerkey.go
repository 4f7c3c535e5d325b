package main

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/seal"
)

// defaultRouterKeyFile is where "berth router" looks for the routers' key
// when no flag or environment names it.
const defaultRouterKeyFile = "/etc/berth/acme.key"

// RouterKeyOptions name the routers' key: 32 bytes (hex or base64), the
// same on every router, sealing their secrets in etcd: the ACME storage
// under it, the private keys stored with "berth cert put" to the HPKE key
// pair derived from it (docs/security.md). "berth cert put" needs it only
// when no router has published that pair's public key.
// The flag is --router-key-file, also spelled --acme-key-file (its name
// from when only ACME used the key); the environment BERTH_ROUTER_KEY_FILE,
// or BERTH_ROUTER_ACME_KEY_FILE (what the stack's router unit sets).
type RouterKeyOptions struct {
	File  string
	def   string
	flags *pflag.FlagSet
}

// AddFlags registers the flags with def as the default file ("" for
// none) and usage saying what the command does with the key.
func (o *RouterKeyOptions) AddFlags(f *pflag.FlagSet, def, usage string) {
	o.def, o.flags = def, f
	d := envOr("BERTH_ROUTER_KEY_FILE", envOr("BERTH_ROUTER_ACME_KEY_FILE", def))
	f.StringVar(&o.File, "router-key-file", d, usage+" (env BERTH_ROUTER_KEY_FILE or BERTH_ROUTER_ACME_KEY_FILE)")
	f.StringVar(&o.File, "acme-key-file", d, "the same as --router-key-file (its earlier name)")
	f.MarkHidden("acme-key-file")
}

// Given reports whether a flag or the environment named the file (as
// opposed to the default).
func (o *RouterKeyOptions) Given() bool {
	if o.flags != nil && (o.flags.Changed("router-key-file") || o.flags.Changed("acme-key-file")) {
		return true
	}
	return os.Getenv("BERTH_ROUTER_KEY_FILE") != "" || os.Getenv("BERTH_ROUTER_ACME_KEY_FILE") != ""
}

// Load reads the key; an error is a usage error naming the flag, never
// quoting the file.
func (o *RouterKeyOptions) Load() ([]byte, error) {
	if o.File == "" {
		return nil, usagef("--router-key-file: no file given")
	}
	key, err := seal.ReadKeyFile(o.File)
	if err != nil {
		return nil, usagef("--router-key-file: %v", err)
	}
	return key, nil
}

// Sealer reads the key and returns its sealer.
func (o *RouterKeyOptions) Sealer() (*seal.Sealer, error) {
	key, err := o.Load()
	if err != nil {
		return nil, err
	}
	return seal.New(key)
}
