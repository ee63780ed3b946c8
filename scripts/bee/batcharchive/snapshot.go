// Package batcharchive stands in for Bee's embedded mainnet postage-batch snapshot.
//
// Noosphere runs Bee only on private test networks (--mainnet=false), where Bee never
// asks for the snapshot; if it did, an empty snapshot makes it sync batches from the chain.
package batcharchive

// GetBatchSnapshot returns no snapshot.
func GetBatchSnapshot() []byte {
	return nil
}
