package irc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/deployer"
	"github.com/deploybot/deploybot/internal/testparts"
)

// writeTestPKI writes a CA and a server certificate for 127.0.0.1 signed by
// it into dir, and returns the CA file and the server's cert and key files.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "deploybot test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server.key", "PRIVATE KEY", keyDER)
}

func TestTLSWithACustomCA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// ngircd reads the key as root at start; keep the files readable
	// to nobody too, for a rehash.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	tlsPort := testparts.FreePort(t)
	srv := testparts.StartNgircdWith(t, fmt.Sprintf("[SSL]\n\tCertFile = %s\n\tKeyFile = %s\n\tPorts = %d\n", certFile, keyFile, tlsPort))

	// Without the CA the server's certificate is refused: no connection.
	untrusting := runAdapter(t, srv, Config{Nick: "untrusting", Port: tlsPort, TLS: true, FloodInterval: 0})
	a := runAdapter(t, srv, Config{Port: tlsPort, TLS: true, TLSCAFile: caFile, FloodInterval: 0})
	alice := testparts.JoinIRC(t, srv, "alice", "#deployments") // alice uses the plain port
	alice.AwaitPresent(10*time.Second, "deploybot", "#deployments")
	a.Announce(deployer.Notice{Deployment: 3, Kind: deployer.NoticeInfo, Text: "over TLS"}, nil)
	alice.AwaitText(10*time.Second, "deploybot", "#deployments", "[#3] over TLS")
	untrusting.mu.Lock()
	n := untrusting.connections
	untrusting.mu.Unlock()
	if n != 0 {
		t.Errorf("an adapter without the CA registered %d time(s) over TLS", n)
	}
	if _, err := New(Config{Server: "h", Port: 1, Nick: "n", Channel: "#c", TLS: true, TLSCAFile: keyFile}); err == nil || !strings.Contains(err.Error(), "holds no PEM certificates") {
		t.Errorf("a CA file without certificates: %v", err)
	}
}
