// scaffolding-createtree: stands in for ghcr.io/sigstore/scaffolding/createtree (its source,
// sigstore/scaffolding cmd/trillian/createtree, is not on the Go module proxy), which the rekor
// and ctlog charts run as a Job with the Role to get and update one ConfigMap:
//
//	--namespace=NS --configmap=NAME --display_name=NAME --admin_server=HOST:PORT [--force=BOOL]
//
// The contract kept: if ConfigMap NS/NAME already has a `treeID` (and --force is not true), keep
// it and exit 0; otherwise create and initialise a LOG tree on the Trillian admin server and
// write its ID to `treeID`, so that the server pods, which read that key, can start. The tree is
// made by Trillian's own createtree (v1.7.3, in the same image at --createtree); the ConfigMap is
// read and updated through the API server with the pod's service account (GET, then PUT).
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount/"
const key = "treeID"

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "createtree: "+format+"\n", args...)
	os.Exit(1)
}

type configMaps struct {
	client *http.Client
	url    string
	token  string
}

func inCluster(namespace, name string) configMaps {
	token, err := os.ReadFile(serviceAccount + "token")
	if err != nil {
		fail("no service account token: %v", err)
	}
	ca, err := os.ReadFile(serviceAccount + "ca.crt")
	if err != nil {
		fail("no service account CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	return configMaps{
		client: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		},
		url:   "https://" + host + "/api/v1/namespaces/" + namespace + "/configmaps/" + name,
		token: strings.TrimSpace(string(token)),
	}
}

func (c configMaps) do(method string, body []byte) map[string]any {
	request, err := http.NewRequest(method, c.url, bytes.NewReader(body))
	if err != nil {
		fail("%v", err)
	}
	request.Header.Set("Authorization", "Bearer "+c.token)
	request.Header.Set("Content-Type", "application/json")
	response, err := c.client.Do(request)
	if err != nil {
		fail("%s %s: %v", method, c.url, err)
	}
	defer response.Body.Close()
	data, _ := io.ReadAll(response.Body)
	if response.StatusCode/100 != 2 {
		fail("%s %s: %s: %s", method, c.url, response.Status, data)
	}
	var object map[string]any
	if err := json.Unmarshal(data, &object); err != nil {
		fail("%s %s: %v", method, c.url, err)
	}
	return object
}

// createTree runs Trillian's createtree, retried while the admin server comes up.
func createTree(program, admin, name string) string {
	var out []byte
	var err error
	for attempt := 1; attempt <= 10; attempt++ {
		command := exec.Command(program, "--admin_server="+admin, "--display_name="+name,
			"--tree_type=LOG", "--max_root_duration=1h")
		command.Stderr = os.Stderr
		out, err = command.Output()
		if err == nil {
			id := strings.TrimSpace(string(out))
			if _, parse := strconv.ParseInt(id, 10, 64); parse != nil {
				fail("createtree printed %q, not a tree ID", id)
			}
			return id
		}
		time.Sleep(3 * time.Second)
	}
	fail("createtree against %s failed: %v", admin, err)
	return ""
}

func main() {
	namespace := flag.String("namespace", "", "namespace of the ConfigMap")
	name := flag.String("configmap", "", "ConfigMap that gets the tree ID under treeID")
	admin := flag.String("admin_server", "", "Trillian admin server, HOST:PORT")
	display := flag.String("display_name", "", "display name of the new tree")
	force := flag.Bool("force", false, "create a new tree even if the ConfigMap has one")
	program := flag.String("createtree", "/usr/local/bin/trillian-createtree", "Trillian's createtree")
	flag.Parse()
	if *namespace == "" || *name == "" || *admin == "" {
		fail("--namespace, --configmap and --admin_server are required")
	}
	configMap := inCluster(*namespace, *name)
	current := configMap.do(http.MethodGet, nil)
	data, _ := current["data"].(map[string]any)
	if existing, ok := data[key].(string); ok && existing != "" && !*force {
		fmt.Printf("Found existing TreeID: %s\n", existing)
		return
	}
	id := createTree(*program, *admin, *display)
	if data == nil {
		data = map[string]any{}
	}
	data[key] = id
	current["data"] = data
	body, err := json.Marshal(current)
	if err != nil {
		fail("%v", err)
	}
	configMap.do(http.MethodPut, body)
	fmt.Printf("Created a new tree %s, updated configmap %s/%s\n", id, *namespace, *name)
}
