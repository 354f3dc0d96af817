#include "wire/shard_map_wire.h"

#include <string>

namespace tessera {

namespace wc = wire::capnp;

void ParamSpecToWire(const ParamSpec& s, wc::ParamDecl::Builder out) {
  out.setName(s.name);
  out.setKind(static_cast<wc::ParamKind>(s.kind));
  out.setDtype(static_cast<wc::DType>(s.dtype));
  auto shape = out.initShape(static_cast<unsigned>(s.shape.size()));
  for (size_t i = 0; i < s.shape.size(); ++i) shape.set(static_cast<unsigned>(i), static_cast<uint64_t>(s.shape[i]));
  out.setInit(static_cast<wc::InitKind>(s.init));
  out.setInitScale(s.init_scale);
  out.setSeed(s.seed);
  auto o = out.initOptimizer();
  o.setKind(static_cast<wc::OptimizerKind>(s.optimizer.kind));
  o.setLr(s.optimizer.lr);
  o.setMomentum(s.optimizer.momentum);
  o.setNesterov(s.optimizer.nesterov);
  o.setBeta1(s.optimizer.beta1);
  o.setBeta2(s.optimizer.beta2);
  o.setEps(s.optimizer.eps);
  o.setWeightDecay(s.optimizer.weight_decay);
  o.setClipNorm(s.optimizer.clip_norm);
  o.setInitialAccumulator(s.optimizer.initial_accumulator);
}

Result<ParamSpec> ParamSpecFromWire(wc::ParamDecl::Reader in) {
  ParamSpec s;
  s.name = in.getName().cStr();
  auto kind = static_cast<uint16_t>(in.getKind());
  auto dtype = static_cast<uint16_t>(in.getDtype());
  auto init = static_cast<uint16_t>(in.getInit());
  auto opt = in.getOptimizer();
  auto okind = static_cast<uint16_t>(opt.getKind());
  if (kind > 1) return Status::InvalidArgument("param '" + s.name + "': unknown kind " + std::to_string(kind));
  if (!IsValidDType(static_cast<uint8_t>(dtype)) || dtype > 255) {
    return Status::InvalidArgument("param '" + s.name + "': unknown dtype " + std::to_string(dtype));
  }
  if (init > 3) return Status::InvalidArgument("param '" + s.name + "': unknown init " + std::to_string(init));
  if (okind > 4) return Status::InvalidArgument("param '" + s.name + "': unknown optimizer " + std::to_string(okind));
  s.kind = static_cast<ParamKind>(kind);
  s.dtype = static_cast<DType>(dtype);
  for (uint64_t d : in.getShape()) {
    if (d > (uint64_t{1} << 48)) return Status::InvalidArgument("param '" + s.name + "': dimension too large");
    s.shape.push_back(static_cast<int64_t>(d));
  }
  s.init = static_cast<InitKind>(init);
  s.init_scale = in.getInitScale();
  s.seed = in.getSeed();
  s.optimizer.kind = static_cast<OptimizerKind>(okind);
  s.optimizer.lr = opt.getLr();
  s.optimizer.momentum = opt.getMomentum();
  s.optimizer.nesterov = opt.getNesterov();
  s.optimizer.beta1 = opt.getBeta1();
  s.optimizer.beta2 = opt.getBeta2();
  s.optimizer.eps = opt.getEps();
  s.optimizer.weight_decay = opt.getWeightDecay();
  s.optimizer.clip_norm = opt.getClipNorm();
  s.optimizer.initial_accumulator = opt.getInitialAccumulator();
  return s;
}

void ParamSpecsToWire(const std::vector<ParamSpec>& specs, wc::ParamDecls::Builder out) {
  auto list = out.initParams(static_cast<unsigned>(specs.size()));
  for (size_t i = 0; i < specs.size(); ++i) ParamSpecToWire(specs[i], list[static_cast<unsigned>(i)]);
}

Result<std::vector<ParamSpec>> ParamSpecsFromWire(wc::ParamDecls::Reader in) {
  std::vector<ParamSpec> out;
  for (auto p : in.getParams()) {
    TESSERA_ASSIGN_OR_RETURN(ParamSpec s, ParamSpecFromWire(p));
    out.push_back(std::move(s));
  }
  return out;
}

void ShardMapToWire(const ShardMapData& m, wc::ShardMap::Builder out) {
  out.setVersion(m.version);
  auto servers = out.initServers(static_cast<unsigned>(m.servers.size()));
  for (size_t i = 0; i < m.servers.size(); ++i) {
    servers[static_cast<unsigned>(i)].setRank(m.servers[i].rank);
    servers[static_cast<unsigned>(i)].setEndpoint(m.servers[i].endpoint);
  }
  auto params = out.initParams(static_cast<unsigned>(m.params.size()));
  for (size_t i = 0; i < m.params.size(); ++i) ParamSpecToWire(m.params[i], params[static_cast<unsigned>(i)]);
  auto dense = out.initDense(static_cast<unsigned>(m.dense.size()));
  for (size_t i = 0; i < m.dense.size(); ++i) {
    auto d = dense[static_cast<unsigned>(i)];
    d.setId(m.dense[i].param_id);
    d.setNumElements(m.dense[i].num_elements);
    d.setChunkElements(m.dense[i].chunk_elements);
    auto cs = d.initChunkServer(static_cast<unsigned>(m.dense[i].chunk_server.size()));
    for (size_t c = 0; c < m.dense[i].chunk_server.size(); ++c) cs.set(static_cast<unsigned>(c), m.dense[i].chunk_server[c]);
  }
  auto sparse = out.initSparse(static_cast<unsigned>(m.sparse.size()));
  for (size_t i = 0; i < m.sparse.size(); ++i) {
    sparse[static_cast<unsigned>(i)].setId(m.sparse[i].param_id);
    sparse[static_cast<unsigned>(i)].setRowWidth(m.sparse[i].row_width);
  }
  out.setSyncMode(m.sync.ToString());
  out.setNumWorkers(m.num_workers);
  out.setGradReduce(std::string(GradReduceName(m.grad_reduce)));
}

Result<ShardMap> ShardMapFromWire(wc::ShardMap::Reader in) {
  ShardMapData m;
  m.version = in.getVersion();
  for (auto s : in.getServers()) m.servers.push_back({s.getRank(), s.getEndpoint().cStr()});
  for (auto p : in.getParams()) {
    TESSERA_ASSIGN_OR_RETURN(ParamSpec s, ParamSpecFromWire(p));
    m.params.push_back(std::move(s));
  }
  for (auto d : in.getDense()) {
    DenseLayout l;
    l.param_id = d.getId();
    l.num_elements = d.getNumElements();
    l.chunk_elements = d.getChunkElements();
    for (uint32_t s : d.getChunkServer()) l.chunk_server.push_back(s);
    m.dense.push_back(std::move(l));
  }
  for (auto s : in.getSparse()) m.sparse.push_back({s.getId(), s.getRowWidth()});
  TESSERA_ASSIGN_OR_RETURN(m.sync, ParseSyncPolicy(in.getSyncMode().cStr()));
  TESSERA_ASSIGN_OR_RETURN(m.grad_reduce, ParseGradReduce(in.getGradReduce().cStr()));
  m.num_workers = in.getNumWorkers();
  return ShardMap::FromData(std::move(m));
}

Status CheckSameParams(const std::vector<ParamSpec>& a, const std::vector<ParamSpec>& b) {
  if (a.size() != b.size()) {
    return Status::InvalidArgument("models differ: " + std::to_string(a.size()) + " vs " +
                                   std::to_string(b.size()) + " parameters");
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const ParamSpec& x = a[i];
    const ParamSpec& y = b[i];
    if (x.name != y.name || x.kind != y.kind || x.dtype != y.dtype || x.shape != y.shape) {
      return Status::InvalidArgument("models differ at parameter " + std::to_string(i) + ": '" + x.name +
                                     "' " + ShapeToString(x.shape) + " vs '" + y.name + "' " +
                                     ShapeToString(y.shape));
    }
  }
  return Status::OK();
}

}  // namespace tessera
