// csr-inspect: the Go oracle for nodecred's CSR approver. It reads a CertificateSigningRequest's
// spec.request the way kube-controller-manager's kubelet-serving signer does (capihelper.ParseCSR:
// pem.Decode + crypto/x509.ParseCertificateRequest, the signer's own kubelet-serving validation), signs
// it with the signer's own code (authority.CertificateAuthority.Sign with the PermissiveSigningPolicy the
// signer uses, under a throwaway CA) and prints, as JSON, what Go saw and what the certificate would say.
// The approver must judge exactly this view or deny; the fuzz target and the regression tests compare.
//
//	cluster csr-inspect < request.pem          one request (PEM or DER) → one JSON object
//	cluster csr-inspect --batch < lines.jsonl  {"id":…,"request":"<base64>","usages":[…]} per line → one line each
//	cluster csr-inspect --make-kubelet-csr ALG NODE [SAN...]
//	    a serving CSR as the kubelet makes it (client-go MakeCSRFromTemplate); ALG ecdsa-p256, ecdsa-p384,
//	    rsa-2048, rsa-3072 or rsa-4096; each SAN an IP or a DNS name
package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"

	capi "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	certutil "k8s.io/client-go/util/cert"
	capihelper "k8s.io/kubernetes/pkg/apis/certificates"
	"k8s.io/kubernetes/pkg/controller/certificates/authority"
)

type inspectInput struct {
	ID      string   `json:"id"`
	Request string   `json:"request"`
	Usages  []string `json:"usages,omitempty"`
}

type inspectName struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type inspectSANs struct {
	CommonName     string        `json:"commonName"`
	Organization   []string      `json:"organization"`
	Names          []inspectName `json:"names"`
	DNSNames       []string      `json:"dnsNames"`
	IPAddresses    []string      `json:"ipAddresses"`
	EmailAddresses []string      `json:"emailAddresses"`
	URIs           []string      `json:"uris"`
}

type inspectExtension struct {
	ID       string `json:"id"`
	Critical bool   `json:"critical"`
}

type inspectOutput struct {
	ID string `json:"id,omitempty"`
	// ParseError: capihelper.ParseCSR failed; kube-apiserver refuses such a CSR and the signer never signs it.
	ParseError string `json:"parseError,omitempty"`
	inspectSANs
	Extensions         []inspectExtension `json:"extensions"`
	PublicKeyAlgorithm string             `json:"publicKeyAlgorithm"`
	SignatureAlgorithm string             `json:"signatureAlgorithm"`
	SignatureValid     bool               `json:"signatureValid"`
	SignatureError     string             `json:"signatureError,omitempty"`
	// KubeletServingError: the signer's own check for kubernetes.io/kubelet-serving (empty: it would sign).
	KubeletServingError string `json:"kubeletServingError,omitempty"`
	// Signed: the certificate the signer's code makes from this request, or why it refuses.
	Signed      *inspectSANs `json:"signed,omitempty"`
	SignedError string       `json:"signedError,omitempty"`
}

// The usages kubelet asks for with an ECDSA key; the signer copies usages from the CSR's spec, not its body.
var defaultServingUsages = []string{string(capi.UsageDigitalSignature), string(capi.UsageServerAuth)}

func runCSRInspect(args []string) int {
	ca, err := throwawayCA()
	if err != nil {
		fmt.Fprintln(os.Stderr, "csr-inspect:", err)
		return 1
	}
	if len(args) == 1 && args[0] == "--batch" {
		return inspectBatch(ca)
	}
	if len(args) >= 3 && args[0] == "--make-kubelet-csr" {
		return makeKubeletCSR(args[1], args[2], args[3:])
	}
	if len(args) != 0 {
		fmt.Fprintln(os.Stderr, "usage: cluster csr-inspect [--batch] < request")
		return 2
	}
	var in bytes.Buffer
	if _, err := in.ReadFrom(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "csr-inspect: reading stdin:", err)
		return 1
	}
	out := inspect(ca, in.Bytes(), defaultServingUsages)
	return writeJSON(json.NewEncoder(os.Stdout), out)
}

// inspectBatch answers one line per input line, in order, so a caller can pipe thousands of requests
// through one process.
func inspectBatch(ca *authority.CertificateAuthority) int {
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	writer := bufio.NewWriter(os.Stdout)
	encoder := json.NewEncoder(writer)
	for scanner.Scan() {
		var input inspectInput
		if err := json.Unmarshal(scanner.Bytes(), &input); err != nil {
			fmt.Fprintln(os.Stderr, "csr-inspect: bad input line:", err)
			return 1
		}
		request, err := base64.StdEncoding.DecodeString(input.Request)
		if err != nil {
			fmt.Fprintln(os.Stderr, "csr-inspect: request is not base64:", err)
			return 1
		}
		usages := input.Usages
		if len(usages) == 0 {
			usages = defaultServingUsages
		}
		out := inspect(ca, request, usages)
		out.ID = input.ID
		if code := writeJSON(encoder, out); code != 0 {
			return code
		}
		// Flush per line: the caller may wait for each answer before sending more.
		if err := writer.Flush(); err != nil {
			return 1
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "csr-inspect: reading stdin:", err)
		return 1
	}
	return 0
}

func writeJSON(encoder *json.Encoder, v any) int {
	if err := encoder.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "csr-inspect: writing output:", err)
		return 1
	}
	return 0
}

func inspect(ca *authority.CertificateAuthority, request []byte, usages []string) inspectOutput {
	var out inspectOutput
	// The API object holds PEM; DER is accepted too so a fuzzer can hand over raw encodings.
	if !bytes.Contains(request, []byte("-----BEGIN")) {
		request = pemEncode("CERTIFICATE REQUEST", request)
	}
	cr, err := capihelper.ParseCSR(request)
	if err != nil {
		out.ParseError = err.Error()
		return out
	}
	out.inspectSANs = sansOf(cr.Subject, cr.DNSNames, cr.IPAddresses, cr.EmailAddresses, cr.URIs)
	for _, ext := range cr.Extensions {
		out.Extensions = append(out.Extensions, inspectExtension{ID: ext.Id.String(), Critical: ext.Critical})
	}
	out.PublicKeyAlgorithm = cr.PublicKeyAlgorithm.String()
	out.SignatureAlgorithm = cr.SignatureAlgorithm.String()
	if err := cr.CheckSignature(); err != nil {
		out.SignatureError = err.Error()
	} else {
		out.SignatureValid = true
	}
	if err := capihelper.ValidateKubeletServingCSR(cr, sets.NewString(usages...)); err != nil {
		out.KubeletServingError = err.Error()
	}
	keyUsages := make([]capi.KeyUsage, len(usages))
	for i, u := range usages {
		keyUsages[i] = capi.KeyUsage(u)
	}
	// As the signer: sign cr.Raw (what ParseCSR returned) with the policy signer.sign uses.
	der, err := ca.Sign(cr.Raw, authority.PermissiveSigningPolicy{
		TTL:      time.Hour,
		Usages:   keyUsages,
		Backdate: 5 * time.Minute,
		Short:    8 * time.Hour,
	})
	if err != nil {
		out.SignedError = err.Error()
		return out
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		out.SignedError = "the signed certificate does not parse: " + err.Error()
		return out
	}
	signed := sansOf(cert.Subject, cert.DNSNames, cert.IPAddresses, cert.EmailAddresses, cert.URIs)
	out.Signed = &signed
	return out
}

func sansOf(subject pkix.Name, dns []string, ips []net.IP, emails []string, uris []*url.URL) inspectSANs {
	s := inspectSANs{
		CommonName:     subject.CommonName,
		Organization:   nonNil(subject.Organization),
		Names:          []inspectName{},
		DNSNames:       nonNil(dns),
		IPAddresses:    []string{},
		EmailAddresses: nonNil(emails),
		URIs:           []string{},
	}
	for _, atv := range subject.Names {
		s.Names = append(s.Names, inspectName{Type: atv.Type.String(), Value: fmt.Sprint(atv.Value)})
	}
	for _, ip := range ips {
		s.IPAddresses = append(s.IPAddresses, ip.String())
	}
	for _, u := range uris {
		s.URIs = append(s.URIs, u.String())
	}
	return s
}

func nonNil(xs []string) []string {
	if xs == nil {
		return []string{}
	}
	return xs
}

func pemEncode(label string, der []byte) []byte {
	var b bytes.Buffer
	b.WriteString("-----BEGIN " + label + "-----\n")
	b.WriteString(base64.StdEncoding.EncodeToString(der))
	b.WriteString("\n-----END " + label + "-----\n")
	return b.Bytes()
}

// throwawayCA is a fresh self-signed CA: only what the signer copies from the request matters here.
func throwawayCA() (*authority.CertificateAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "csr-inspect throwaway CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority.CertificateAuthority{Certificate: cert, PrivateKey: key}, nil
}

// makeKubeletCSR prints the serving CSR the kubelet's certificate manager would send for NODE: subject
// O=system:nodes, CN=system:node:NODE, the SANs, signed by a fresh key with the kubelet's algorithm choice.
func makeKubeletCSR(alg, node string, sans []string) int {
	var key crypto.Signer
	var err error
	switch alg {
	case "ecdsa-p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa-2048", "rsa-3072", "rsa-4096":
		bits := map[string]int{"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}[alg]
		key, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		fmt.Fprintln(os.Stderr, "csr-inspect: unknown key algorithm", alg)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "csr-inspect:", err)
		return 1
	}
	template := &x509.CertificateRequest{
		Subject: pkix.Name{Organization: []string{"system:nodes"}, CommonName: "system:node:" + node},
	}
	for _, san := range sans {
		if ip := net.ParseIP(san); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, san)
		}
	}
	pemBytes, err := certutil.MakeCSRFromTemplate(key, template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "csr-inspect:", err)
		return 1
	}
	os.Stdout.Write(pemBytes) //nolint:errcheck
	return 0
}
