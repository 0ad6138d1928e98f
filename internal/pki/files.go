package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/drover-dev/drover/internal/atomicfile"
)

// writeFile writes data to path with mode, fsynced, so that a crash never
// leaves a half-written key behind a good name.
//
// Without replace, the file is created with O_EXCL: it fails with ErrExists
// rather than overwrite anything, even when racing another writer. With
// replace, it is replaced atomically (internal/atomicfile): readers see the
// old file or the new one, never a mix, and a key is never readable by
// others even for a moment.
func writeFile(path string, data []byte, mode os.FileMode, replace bool) error {
	if !replace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write %s: %w", path, ErrExists)
		} else if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := finish(f, data, mode); err != nil {
			os.Remove(path)
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// finish writes, sets the exact mode (the umask may have narrowed it at
// creation, and CreateTemp always uses 0600), syncs and closes f.
func finish(f *os.File, data []byte, mode os.FileMode) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// encodeKey encodes a private key as PKCS#8 PEM, the format every TLS stack
// and openssl read.
func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads a PKCS#8 key, or a SEC1 "EC PRIVATE KEY" so that a CA made
// with openssl can be used too. Errors never include the key's bytes.
func parseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key found")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, errors.New("malformed PKCS#8 private key")
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", k)
			}
			return s, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, errors.New("malformed EC private key")
			}
			return k, nil
		}
	}
}

// parseCert returns the first certificate of a PEM file.
func parseCert(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate found")
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return c, nil
		}
	}
}
