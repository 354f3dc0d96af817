// What every rank states about the job it was started for. Under mpirun the ranks
// exchange these through MPI before anything else (launch/job.cc): rank 0's record
// carries the coordinator endpoint it bound, so no rank guesses rank 0's address, and a
// rank started with other flags, another job key or for another job is named, with its
// host, before anything trains.
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tessera::launch {

struct JobRecord {
  int rank = 0;
  std::string host;             // the host name the rank runs on
  uint64_t job_id = 0;
  int world_size = 0;
  int servers = 0;
  int workers = 0;
  std::string sync;             // --sync
  std::string key_fingerprint;  // of the job key under CURVE; "" without
  std::string coordinator;      // rank 0: the endpoint peers connect to; "" elsewhere
};

// One "key=value" line per field. Values may not hold a newline (EncodeJobRecord
// replaces one with a space).
std::string EncodeJobRecord(const JobRecord& r);
// Errors name the line that does not parse.
Result<JobRecord> DecodeJobRecord(const std::string& text);

// Checks every record against rank 0's (records[i] is world rank i). The error lists
// every rank that disagrees: its rank, host and the fields that differ, with both values.
Status CheckJobAgreement(const std::vector<JobRecord>& records);

// A short, stable fingerprint of a public key, for logs and records (not a secret).
std::string KeyFingerprint(const std::string& public_key);

}  // namespace tessera::launch
