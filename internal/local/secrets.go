package local

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
)

// SecretsKeyFile is berth up's sealed-secrets identity, in its data
// directory: made on the first start, its recipient published in etcd, so
// that "berth secret put" works against berth up at once.
const SecretsKeyFile = "secrets.key"

// localSecrets loads (or makes) berth up's identity, publishes its
// recipient if the cluster has none, and returns the exec driver's opener,
// which reads as the agent.
func localSecrets(ctx context.Context, dataDir string, operator, agent clientv3.KV, keys registry.Keys, say func(string, ...any)) (func(context.Context, string, string) ([]byte, error), error) {
	path := filepath.Join(dataDir, SecretsKeyFile)
	ids, err := secret.LoadIdentities(path)
	if errors.Is(err, secret.ErrIdentity) {
		if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
			id, gerr := secret.Generate()
			if gerr != nil {
				return nil, gerr
			}
			if werr := secret.WriteIdentity(path, id); werr != nil {
				return nil, werr
			}
			ids, err = secret.LoadIdentities(path)
		}
	}
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	store := &secret.Store{KV: operator, Keys: keys}
	if err := store.Init(ictx, secret.RecipientsOf(ids)); err != nil {
		return nil, err
	}
	say("  sealed secrets: key %s (berth secret put APP NAME seals to it)", path)
	opener := &secret.Store{KV: agent, Keys: keys}
	return func(ctx context.Context, app, name string) ([]byte, error) { return opener.Open(ctx, app, name, ids) }, nil
}
