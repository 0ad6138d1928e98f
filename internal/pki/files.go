package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/drover-dev/drover/internal/atomicfile"
)

// writeFile writes data to path with mode, so that a crash never leaves a
// half-written key behind a good name, and a key is never readable by
// others even for a moment (internal/atomicfile). Without replace it fails
// with ErrExists rather than overwrite anything, even when racing another
// writer; with replace, readers see the old file or the new one.
func writeFile(path string, data []byte, mode os.FileMode, replace bool) error {
	var err error
	if replace {
		err = atomicfile.Write(path, data, mode)
	} else {
		err = atomicfile.Create(path, data, mode)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write %s: %w", path, ErrExists)
	} else if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
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
