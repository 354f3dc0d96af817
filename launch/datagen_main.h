// `tessera datagen`: writes synthetic data sets for the examples and tests.
//
//   tessera datagen criteo --rows N [--valid_rows M] [--seed S] [--card_scale K]
//                          [--zipf_offset D] -o DIR
//
// criteo: DIR/train.txt (N rows) and DIR/valid.txt (M rows; default N/10, at least 1000)
// in the Criteo Kaggle TSV layout with labels from a planted model
// (worker/data/criteo_gen.h), and DIR/planted.txt holding the planted model's AUC and
// log-loss on valid.txt (the ceiling a trained model is measured against). The same
// numbers are printed, as "planted model on valid.txt: AUC 0.xxxx, log-loss 0.xxxx".
//
// Exit codes: 0 written; 2 bad usage; 1 a write failed.
//
// Threading: single-threaded.
#pragma once

namespace tessera::launch {

int DatagenMain(int argc, char** argv);

}  // namespace tessera::launch
