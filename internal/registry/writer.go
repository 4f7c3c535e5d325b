package registry

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/seal"
	"github.com/berthproject/berth/internal/spec"
)

// PublishApp is Apply without options: the spec and its domains, a domain
// of another app refused.
func PublishApp(ctx context.Context, kv clientv3.KV, k Keys, app *spec.App) error {
	_, err := Apply(ctx, kv, k, app, ApplyOptions{})
	return err
}

// InstanceKV returns the key and JSON value of an instance record,
// validated.
func InstanceKV(k Keys, in *Instance) (string, string, error) {
	if err := in.Validate(); err != nil {
		return "", "", err
	}
	key, err := k.Instance(in.App, in.ID)
	if err != nil {
		return "", "", err
	}
	val, err := json.Marshal(in)
	return key, string(val), err
}

// InstanceKVs returns the key and value of an instance record and, with
// skydnsZone set, its SkyDNS mirror (SkyDNSKVs): what the owner of the
// instance's lease writes on it.
func InstanceKVs(k Keys, in *Instance, skydnsZone string) (key, value string, mirror map[string]string, err error) {
	if key, value, err = InstanceKV(k, in); err != nil {
		return "", "", nil, err
	}
	if skydnsZone != "" {
		if mirror, err = SkyDNSKVs(skydnsZone, in); err != nil {
			return "", "", nil, err
		}
	}
	return key, value, mirror, nil
}

// ErrNoApp is returned for an app without a spec in etcd.
var ErrNoApp = errors.New("no such app (apply its spec first)")

// ScaleApp sets the instance count in an app's stored spec with
// compare-and-swap and returns the previous count.
func ScaleApp(ctx context.Context, kv clientv3.KV, k Keys, app string, n int) (int, error) {
	key, err := k.App(app)
	if err != nil {
		return 0, err
	}
	for range 10 {
		resp, err := kv.Get(ctx, key)
		if err != nil {
			return 0, err
		}
		if len(resp.Kvs) == 0 {
			return 0, fmt.Errorf("%s: %w", app, ErrNoApp)
		}
		var a spec.App
		if err := json.Unmarshal(resp.Kvs[0].Value, &a); err != nil {
			return 0, fmt.Errorf("decode %s: %w", key, err)
		}
		prev := a.Instances
		a.Instances = n
		if err := a.Validate(); err != nil {
			return 0, err
		}
		val, _ := json.Marshal(&a)
		tx, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(val))).Commit()
		if err != nil {
			return 0, err
		}
		if tx.Succeeded {
			return prev, nil
		}
	}
	return 0, fmt.Errorf("scale %s: %w", app, ErrConflict)
}

// PutCert stores a certificate for host after checking that the
// certificate and key belong together; the key is sealed to the routers'
// recipient (r, required: GetCertRecipient, or seal.RecipientFromKey):
// etcd never holds it in clear.
func PutCert(ctx context.Context, kv clientv3.KV, k Keys, host string, certPEM, keyPEM []byte, r *seal.Recipient) error {
	if r == nil {
		return fmt.Errorf("certificate for %s: the private key is sealed to the routers' recipient, and none was given", host)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("certificate for %s: %w", host, err)
	}
	key, err := k.Cert(host)
	if err != nil {
		return err
	}
	if err := EnsureSchema(ctx, kv, k); err != nil {
		return err
	}
	sealed, err := SealCertKey(r, strings.TrimPrefix(key, k.certsPrefix()), keyPEM)
	if err != nil {
		return fmt.Errorf("certificate for %s: seal the key: %w", host, err)
	}
	val, _ := json.Marshal(Cert{Cert: string(certPEM), KeySealed: sealed})
	_, err = kv.Put(ctx, key, string(val))
	return err
}
