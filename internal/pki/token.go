package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// TokenPrefix starts every drover token, so that secret scanners and people
// can recognise one in a config file or a leaked log.
const TokenPrefix = "drv_"

const tokenHashContext = "drover-token-v1\x00"

// NewToken returns a new management token: "drv_" followed by 32 random
// bytes in unpadded base64url (256 bits, safe in headers and shells).
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns what is stored instead of a token:
// hex(sha256("drover-token-v1\x00" + tok)). A fast hash is enough here, and
// a slow password hash (bcrypt, argon2) would only cost CPU per request:
// tokens carry 256 random bits, so there is nothing to brute-force or look
// up in a dictionary. The context prefix versions the scheme and keeps the
// hash from matching a plain sha256 of the token anywhere else.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tokenHashContext + tok))
	return hex.EncodeToString(sum[:])
}

// ReadToken reads a token from a file such as bootstrap.token, ignoring
// surrounding whitespace (editors and `echo` add a newline). An empty file
// is an error: sending an empty token would only produce a confusing 401.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("read token %s: the file is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		// Never quote the content: it is a secret, even when malformed.
		return "", fmt.Errorf("read token %s: expected one token on one line", path)
	}
	return tok, nil
}
