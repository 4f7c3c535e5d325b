package acmestore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Certificate is one certificate certmagic keeps in a store, as its key
// names it (no value is opened).
type Certificate struct {
	Name   string // the certificate's name: "shop.example.com", "*.example.com"
	Issuer string // certmagic's issuer key: the CA's directory, e.g. "acme-v02.api.letsencrypt.org-directory"
	Key    string // storage key of the certificate's PEM (for Store.Load)
}

// ListCertificates returns the certificates stored under prefix (the
// store's prefix, e.g. "/berth/v1/acme/"), sorted by name and issuer. It
// reads keys only, so it needs no sealing key: Store.Load with one opens
// a certificate.
func ListCertificates(ctx context.Context, kv clientv3.KV, prefix string) ([]Certificate, error) {
	base := strings.TrimSuffix(prefix, "/") + "/data/"
	resp, err := kv.Get(ctx, base+"certificates/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list acme certificates: %w", err)
	}
	var out []Certificate
	for _, e := range resp.Kvs {
		key := strings.TrimPrefix(string(e.Key), base)
		// certificates/<issuer>/<name>/<name>.crt (certmagic's StorageKeys)
		parts := strings.Split(key, "/")
		if len(parts) != 4 || parts[3] != parts[2]+".crt" {
			continue
		}
		name := parts[2]
		if rest, ok := strings.CutPrefix(name, "wildcard_."); ok {
			name = "*." + rest
		}
		out = append(out, Certificate{Name: name, Issuer: parts[1], Key: key})
	}
	slices.SortFunc(out, func(a, b Certificate) int { return strings.Compare(a.Name+" "+a.Issuer, b.Name+" "+b.Issuer) })
	return out, nil
}
