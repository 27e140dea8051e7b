// ucx_check: an Arrow C++ (19) Flight peer for the ucx: transport, for interop checks.
//
//   ucx_check server ucx://127.0.0.1:PORT
//       Serves GetFlightInfo, PollFlightInfo, DoGet, DoPut, DoExchange.
//       - built-in flights: path/ticket "simple" (3 batches: 5, 1000, 200000 rows of
//         int64/utf8/float64-with-nulls) and "dict" (2 batches with a dictionary column);
//       - DoPut stores the uploaded stream under the descriptor path joined with '/' (or the
//         cmd bytes), acknowledging each batch with app_metadata "ack:<batch>:<rows>";
//       - DoExchange echoes every batch (with its app_metadata) and every metadata-only message;
//       - anything unknown is KeyError (Flight NOT_FOUND).
//   ucx_check client ucx://HOST:PORT [steps...]
//       Runs numbered checks against any server with those semantics (ours, or polyflight's
//       `serve --service memory`), one fresh FlightClient per check, printing PASS/FAIL lines.
//       steps: put info get get_simple poll exchange exchange_meta errors dict small reuse
//       (default: all but get_simple and small)
#include <arrow/api.h>
#include <arrow/flight/api.h>
#include <arrow/flight/transport/ucx/ucx.h>
#include <arrow/ipc/api.h>
#include <arrow/util/logging.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace fl = arrow::flight;
using arrow::Status;

namespace {

std::shared_ptr<arrow::Schema> SimpleSchema() {
  return arrow::schema({arrow::field("id", arrow::int64(), false),
                        arrow::field("name", arrow::utf8()),
                        arrow::field("val", arrow::float64())});
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> SimpleBatch(int64_t offset, int64_t rows) {
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  arrow::DoubleBuilder vals;
  for (int64_t i = 0; i < rows; i++) {
    int64_t v = offset + i;
    ARROW_RETURN_NOT_OK(ids.Append(v));
    ARROW_RETURN_NOT_OK(names.Append("row-" + std::to_string(v)));
    if (v % 7 == 3) {
      ARROW_RETURN_NOT_OK(vals.AppendNull());
    } else {
      ARROW_RETURN_NOT_OK(vals.Append(static_cast<double>(v) * 0.5));
    }
  }
  std::shared_ptr<arrow::Array> a, b, c;
  ARROW_RETURN_NOT_OK(ids.Finish(&a));
  ARROW_RETURN_NOT_OK(names.Finish(&b));
  ARROW_RETURN_NOT_OK(vals.Finish(&c));
  auto batch = arrow::RecordBatch::Make(SimpleSchema(), rows, {a, b, c});
  ARROW_RETURN_NOT_OK(batch->ValidateFull());
  return batch;
}

arrow::Result<arrow::RecordBatchVector> SimpleBatches() {
  arrow::RecordBatchVector out;
  int64_t offset = 0;
  for (int64_t rows : {5, 1000, 200000}) {
    ARROW_ASSIGN_OR_RAISE(auto batch, SimpleBatch(offset, rows));
    out.push_back(batch);
    offset += rows;
  }
  return out;
}

std::shared_ptr<arrow::Schema> DictSchema() {
  return arrow::schema(
      {arrow::field("id", arrow::int32()),
       arrow::field("cat", arrow::dictionary(arrow::int32(), arrow::utf8()))});
}

arrow::Result<arrow::RecordBatchVector> DictBatches() {
  arrow::RecordBatchVector out;
  for (int b = 0; b < 2; b++) {
    arrow::Int32Builder ids;
    arrow::StringDictionary32Builder cats;
    for (int i = 0; i < 100; i++) {
      ARROW_RETURN_NOT_OK(ids.Append(b * 100 + i));
      static const char* kCats[] = {"red", "green", "blue"};
      ARROW_RETURN_NOT_OK(cats.Append(kCats[i % 3]));
    }
    std::shared_ptr<arrow::Array> a, c;
    ARROW_RETURN_NOT_OK(ids.Finish(&a));
    ARROW_RETURN_NOT_OK(cats.Finish(&c));
    auto batch = arrow::RecordBatch::Make(DictSchema(), 100, {a, c});
    ARROW_RETURN_NOT_OK(batch->ValidateFull());
    out.push_back(batch);
  }
  return out;
}

std::string DescriptorKey(const fl::FlightDescriptor& d) {
  if (d.type == fl::FlightDescriptor::PATH) {
    std::string key;
    for (size_t i = 0; i < d.path.size(); i++) {
      if (i) key += "/";
      key += d.path[i];
    }
    return key;
  }
  return d.cmd;
}

int64_t Rows(const arrow::RecordBatchVector& batches) {
  int64_t n = 0;
  for (const auto& b : batches) n += b->num_rows();
  return n;
}

struct Stored {
  std::shared_ptr<arrow::Schema> schema;
  arrow::RecordBatchVector batches;
  fl::FlightDescriptor descriptor;
};

class CheckServer : public fl::FlightServerBase {
 public:
  Status Init2() {
    ARROW_ASSIGN_OR_RAISE(auto simple, SimpleBatches());
    flights_["simple"] = {SimpleSchema(), simple, fl::FlightDescriptor::Path({"simple"})};
    ARROW_ASSIGN_OR_RAISE(auto dict, DictBatches());
    flights_["dict"] = {DictSchema(), dict, fl::FlightDescriptor::Path({"dict"})};
    return Status::OK();
  }

  arrow::Result<Stored> Lookup(const std::string& key) {
    std::lock_guard<std::mutex> guard(mutex_);
    auto it = flights_.find(key);
    if (it == flights_.end()) return Status::KeyError("no flight '", key, "'");
    return it->second;
  }

  arrow::Result<std::unique_ptr<fl::FlightInfo>> Info(const fl::FlightDescriptor& request) {
    std::string key = DescriptorKey(request);
    ARROW_ASSIGN_OR_RAISE(auto stored, Lookup(key));
    fl::FlightEndpoint endpoint;
    endpoint.ticket.ticket = key;
    ARROW_ASSIGN_OR_RAISE(auto info,
                          fl::FlightInfo::Make(*stored.schema, request, {endpoint},
                                               Rows(stored.batches), -1, true, "info-meta"));
    return std::make_unique<fl::FlightInfo>(std::move(info));
  }

  Status GetFlightInfo(const fl::ServerCallContext&, const fl::FlightDescriptor& request,
                       std::unique_ptr<fl::FlightInfo>* info) override {
    std::cerr << "[server] GetFlightInfo " << request.ToString() << std::endl;
    ARROW_ASSIGN_OR_RAISE(*info, Info(request));
    return Status::OK();
  }

  Status PollFlightInfo(const fl::ServerCallContext&, const fl::FlightDescriptor& request,
                        std::unique_ptr<fl::PollInfo>* out) override {
    std::cerr << "[server] PollFlightInfo " << request.ToString() << std::endl;
    ARROW_ASSIGN_OR_RAISE(auto info, Info(request));
    *out = std::make_unique<fl::PollInfo>(std::move(info), std::nullopt, 1.0, std::nullopt);
    return Status::OK();
  }

  Status DoGet(const fl::ServerCallContext&, const fl::Ticket& request,
               std::unique_ptr<fl::FlightDataStream>* stream) override {
    std::cerr << "[server] DoGet ticket='" << request.ticket << "'" << std::endl;
    ARROW_ASSIGN_OR_RAISE(auto stored, Lookup(request.ticket));
    ARROW_ASSIGN_OR_RAISE(auto reader,
                          arrow::RecordBatchReader::Make(stored.batches, stored.schema));
    *stream = std::make_unique<fl::RecordBatchStream>(reader);
    return Status::OK();
  }

  Status DoPut(const fl::ServerCallContext&, std::unique_ptr<fl::FlightMessageReader> reader,
               std::unique_ptr<fl::FlightMetadataWriter> writer) override {
    const auto& descriptor = reader->descriptor();
    std::cerr << "[server] DoPut " << descriptor.ToString() << std::endl;
    ARROW_ASSIGN_OR_RAISE(auto schema, reader->GetSchema());
    Stored stored{schema, {}, descriptor};
    int64_t rows = 0;
    int metadata_only = 0;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, reader->Next());
      if (!chunk.data && !chunk.app_metadata) break;
      if (chunk.data) {
        stored.batches.push_back(chunk.data);
        rows += chunk.data->num_rows();
        std::string ack = "ack:" + std::to_string(stored.batches.size()) + ":" +
                          std::to_string(rows);
        ARROW_RETURN_NOT_OK(writer->WriteMetadata(*arrow::Buffer::FromString(ack)));
      } else {
        metadata_only++;
      }
    }
    std::cerr << "[server] DoPut stored " << stored.batches.size() << " batches, " << rows
              << " rows, " << metadata_only << " metadata-only messages under '"
              << DescriptorKey(descriptor) << "'" << std::endl;
    std::lock_guard<std::mutex> guard(mutex_);
    flights_[DescriptorKey(descriptor)] = stored;
    return Status::OK();
  }

  Status DoExchange(const fl::ServerCallContext&,
                    std::unique_ptr<fl::FlightMessageReader> reader,
                    std::unique_ptr<fl::FlightMessageWriter> writer) override {
    std::cerr << "[server] DoExchange " << reader->descriptor().ToString() << std::endl;
    bool begun = false;
    int batches = 0, metadata_only = 0;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, reader->Next());
      if (!chunk.data && !chunk.app_metadata) break;
      if (chunk.data) {
        if (!begun) {
          ARROW_RETURN_NOT_OK(writer->Begin(chunk.data->schema()));
          begun = true;
        }
        if (chunk.app_metadata) {
          ARROW_RETURN_NOT_OK(writer->WriteWithMetadata(*chunk.data, chunk.app_metadata));
        } else {
          ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*chunk.data));
        }
        batches++;
      } else {
        ARROW_RETURN_NOT_OK(writer->WriteMetadata(chunk.app_metadata));
        metadata_only++;
      }
    }
    std::cerr << "[server] DoExchange echoed " << batches << " batches, " << metadata_only
              << " metadata-only" << std::endl;
    return Status::OK();
  }

 private:
  std::mutex mutex_;
  std::map<std::string, Stored> flights_;
};

std::atomic<fl::FlightServerBase*> g_server{nullptr};
void OnSignal(int) {
  // Shutdown from another thread: signal handlers must not block
  std::thread([] {
    if (auto* s = g_server.load()) (void)s->Shutdown();
  }).detach();
}

int RunServer(const std::string& uri) {
  auto location = fl::Location::Parse(uri).ValueOrDie();
  CheckServer server;
  ARROW_CHECK_OK(server.Init2());
  fl::FlightServerOptions options(location);
  ARROW_CHECK_OK(server.Init(options));
  std::cout << "listening on " << server.location().ToString() << std::endl;
  g_server = &server;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  ARROW_CHECK_OK(server.Wait());
  std::cerr << "[server] shut down" << std::endl;
  return 0;
}

// ---------------------------------------------------------------- client

struct Checker {
  std::string uri;
  int passed = 0, failed = 0;

  void Report(const std::string& name, const Status& st) {
    if (st.ok()) {
      passed++;
      std::cout << "PASS " << name << std::endl;
    } else {
      failed++;
      std::cout << "FAIL " << name << ": " << st.ToString() << std::endl;
    }
  }

  arrow::Result<std::unique_ptr<fl::FlightClient>> Connect() {
    ARROW_ASSIGN_OR_RAISE(auto location, fl::Location::Parse(uri));
    return fl::FlightClient::Connect(location);
  }
};

Status Expect(bool cond, const std::string& what) {
  if (!cond) return Status::Invalid("expectation failed: ", what);
  return Status::OK();
}

Status CompareTables(const std::shared_ptr<arrow::Schema>& schema,
                     const arrow::RecordBatchVector& expected,
                     const std::shared_ptr<arrow::Table>& got) {
  ARROW_ASSIGN_OR_RAISE(auto want, arrow::Table::FromRecordBatches(schema, expected));
  if (!got->schema()->Equals(*schema)) {
    return Status::Invalid("schema differs: got ", got->schema()->ToString(), " want ",
                           schema->ToString());
  }
  if (!got->Equals(*want)) {
    for (int i = 0; i < got->num_columns(); i++) {
      if (!got->column(i)->Equals(*want->column(i))) {
        std::cerr << "column " << i << " differs; got chunk0:\n"
                  << got->column(i)->chunk(0)->ToString().substr(0, 600) << "\nwant chunk0:\n"
                  << want->column(i)->chunk(0)->ToString().substr(0, 600) << std::endl;
        break;
      }
    }
    return Status::Invalid("table contents differ: got ", got->num_rows(), " rows, want ",
                           want->num_rows());
  }
  return Status::OK();
}

Status DoPutBatches(fl::FlightClient* client, const fl::FlightDescriptor& descriptor,
                    const std::shared_ptr<arrow::Schema>& schema,
                    const arrow::RecordBatchVector& batches, std::vector<std::string>* acks) {
  ARROW_ASSIGN_OR_RAISE(auto put, client->DoPut(descriptor, schema));
  int i = 0;
  for (const auto& batch : batches) {
    ARROW_RETURN_NOT_OK(put.writer->WriteWithMetadata(
        *batch, arrow::Buffer::FromString("put-meta-" + std::to_string(i++))));
  }
  ARROW_RETURN_NOT_OK(put.writer->DoneWriting());
  std::shared_ptr<arrow::Buffer> meta;
  while (true) {
    ARROW_RETURN_NOT_OK(put.reader->ReadMetadata(&meta));
    if (!meta) break;
    acks->push_back(meta->ToString());
  }
  return put.writer->Close();
}

Status StepPut(Checker& c) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto batches, SimpleBatches());
  std::vector<std::string> acks;
  ARROW_RETURN_NOT_OK(DoPutBatches(client.get(), fl::FlightDescriptor::Path({"cpp", "put"}),
                                   SimpleSchema(), batches, &acks));
  std::cout << "  DoPut acks:";
  for (const auto& a : acks) std::cout << " '" << a << "'";
  std::cout << std::endl;
  ARROW_RETURN_NOT_OK(Expect(acks.size() == batches.size(), "one ack per batch"));
  return client->Close();
}

Status StepInfo(Checker& c) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto info,
                        client->GetFlightInfo(fl::FlightDescriptor::Path({"cpp", "put"})));
  arrow::ipc::DictionaryMemo memo;
  ARROW_ASSIGN_OR_RAISE(auto schema, info->GetSchema(&memo));
  std::cout << "  FlightInfo: records=" << info->total_records()
            << " bytes=" << info->total_bytes() << " endpoints=" << info->endpoints().size()
            << " ordered=" << info->ordered() << " descriptor=" << info->descriptor().ToString()
            << " schema=" << schema->ToString(false) << std::endl;
  ARROW_RETURN_NOT_OK(Expect(schema->Equals(*SimpleSchema()), "schema"));
  ARROW_RETURN_NOT_OK(Expect(info->total_records() == 201005, "total_records == 201005"));
  ARROW_RETURN_NOT_OK(Expect(info->endpoints().size() == 1, "one endpoint"));
  ARROW_RETURN_NOT_OK(
      Expect(info->endpoints()[0].ticket.ticket == "cpp/put", "ticket 'cpp/put'"));
  return client->Close();
}

Status StepGet(Checker& c, const std::string& ticket,
               const std::shared_ptr<arrow::Schema>& schema,
               const arrow::RecordBatchVector& expected) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto reader, client->DoGet(fl::Ticket{ticket}));
  ARROW_ASSIGN_OR_RAISE(auto table, reader->ToTable());
  std::cout << "  DoGet '" << ticket << "': " << table->num_rows() << " rows, "
            << table->column(0)->num_chunks() << " chunks" << std::endl;
  ARROW_RETURN_NOT_OK(CompareTables(schema, expected, table));
  return client->Close();
}

Status StepPoll(Checker& c) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto poll,
                        client->PollFlightInfo(fl::FlightDescriptor::Path({"cpp", "put"})));
  std::cout << "  PollInfo: " << poll->ToString() << std::endl;
  ARROW_RETURN_NOT_OK(Expect(poll->info != nullptr, "PollInfo.info present"));
  ARROW_RETURN_NOT_OK(Expect(poll->info->total_records() == 201005, "records"));
  ARROW_RETURN_NOT_OK(Expect(!poll->descriptor.has_value(), "no descriptor (complete)"));
  return client->Close();
}

Status StepExchange(Checker& c, bool with_metadata_only) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto ex,
                        client->DoExchange(fl::FlightDescriptor::Path({"cpp", "exchange"})));
  ARROW_ASSIGN_OR_RAISE(auto batches, SimpleBatches());
  ARROW_RETURN_NOT_OK(ex.writer->Begin(SimpleSchema()));
  arrow::RecordBatchVector got;
  std::vector<std::string> metas;
  int sent_meta_only = 0;
  for (size_t i = 0; i < batches.size(); i++) {
    ARROW_RETURN_NOT_OK(ex.writer->WriteWithMetadata(
        *batches[i], arrow::Buffer::FromString("ex-meta-" + std::to_string(i))));
    if (with_metadata_only) {
      ARROW_RETURN_NOT_OK(
          ex.writer->WriteMetadata(arrow::Buffer::FromString("only-" + std::to_string(i))));
      sent_meta_only++;
    }
    // read the echo(es) of what we just sent: lock-step, so nothing piles up
    int want = with_metadata_only ? 2 : 1;
    for (int k = 0; k < want; k++) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, ex.reader->Next());
      if (!chunk.data && !chunk.app_metadata) return Status::Invalid("stream ended early");
      if (chunk.data) got.push_back(chunk.data);
      if (chunk.app_metadata) metas.push_back(chunk.app_metadata->ToString());
    }
  }
  ARROW_RETURN_NOT_OK(ex.writer->DoneWriting());
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto chunk, ex.reader->Next());
    if (!chunk.data && !chunk.app_metadata) break;
    if (chunk.data) got.push_back(chunk.data);
    if (chunk.app_metadata) metas.push_back(chunk.app_metadata->ToString());
  }
  ARROW_RETURN_NOT_OK(ex.writer->Close());
  std::cout << "  DoExchange echoed " << got.size() << " batches; metadata:";
  for (const auto& m : metas) std::cout << " '" << m << "'";
  std::cout << std::endl;
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(SimpleSchema(), got));
  ARROW_RETURN_NOT_OK(CompareTables(SimpleSchema(), batches, table));
  ARROW_RETURN_NOT_OK(Expect(metas.size() == batches.size() + sent_meta_only,
                             "every app_metadata echoed"));
  return client->Close();
}

Status StepErrors(Checker& c) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  auto r1 = client->GetFlightInfo(fl::FlightDescriptor::Path({"no", "such"}));
  std::cout << "  GetFlightInfo(no/such): " << r1.status().ToString() << std::endl;
  ARROW_RETURN_NOT_OK(Expect(r1.status().IsKeyError(), "KeyError (Flight NOT_FOUND)"));
  // the connection must still work after an error
  auto r2 = client->DoGet(fl::Ticket{"no/such"});
  Status st = r2.status();
  if (st.ok()) {
    auto t = (*r2)->ToTable();
    st = t.status();
  }
  std::cout << "  DoGet(no/such): " << st.ToString() << std::endl;
  ARROW_RETURN_NOT_OK(Expect(st.IsKeyError(), "KeyError (Flight NOT_FOUND)"));
  return client->Close();
}

Status StepDict(Checker& c) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto batches, DictBatches());
  std::vector<std::string> acks;
  ARROW_RETURN_NOT_OK(DoPutBatches(client.get(), fl::FlightDescriptor::Path({"cpp", "dict"}),
                                   DictSchema(), batches, &acks));
  std::cout << "  DoPut(dict) acks: " << acks.size() << std::endl;
  ARROW_RETURN_NOT_OK(client->Close());
  return StepGet(c, "cpp/dict", DictSchema(), batches);
}

// Many calls on ONE client (so on pooled connections): GetFlightInfo, DoGet, DoPut, DoExchange
Status StepReuse(Checker& c, int iterations) {
  ARROW_ASSIGN_OR_RAISE(auto client, c.Connect());
  ARROW_ASSIGN_OR_RAISE(auto small, SimpleBatch(0, 5));
  arrow::RecordBatchVector batches{small};
  for (int i = 0; i < iterations; i++) {
    std::vector<std::string> acks;
    ARROW_RETURN_NOT_OK(DoPutBatches(client.get(), fl::FlightDescriptor::Path({"cpp", "small"}),
                                     SimpleSchema(), batches, &acks));
    ARROW_ASSIGN_OR_RAISE(auto info,
                          client->GetFlightInfo(fl::FlightDescriptor::Path({"cpp", "small"})));
    ARROW_RETURN_NOT_OK(Expect(info->total_records() == 5, "5 records"));
    ARROW_ASSIGN_OR_RAISE(auto reader, client->DoGet(fl::Ticket{"cpp/small"}));
    ARROW_ASSIGN_OR_RAISE(auto table, reader->ToTable());
    ARROW_RETURN_NOT_OK(CompareTables(SimpleSchema(), batches, table));
    auto err = client->GetFlightInfo(fl::FlightDescriptor::Path({"no", "such"}));
    ARROW_RETURN_NOT_OK(Expect(err.status().IsKeyError(), "KeyError"));
    ARROW_ASSIGN_OR_RAISE(auto ex,
                          client->DoExchange(fl::FlightDescriptor::Path({"cpp", "exchange"})));
    ARROW_RETURN_NOT_OK(ex.writer->Begin(SimpleSchema()));
    ARROW_RETURN_NOT_OK(ex.writer->WriteRecordBatch(*small));
    ARROW_RETURN_NOT_OK(ex.writer->DoneWriting());
    int n = 0;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, ex.reader->Next());
      if (!chunk.data && !chunk.app_metadata) break;
      if (chunk.data) n++;
    }
    ARROW_RETURN_NOT_OK(ex.writer->Close());
    ARROW_RETURN_NOT_OK(Expect(n == 1, "one echoed batch"));
  }
  std::cout << "  " << iterations << " x (DoPut, GetFlightInfo, DoGet, error, DoExchange) on one client"
            << std::endl;
  return client->Close();
}

int RunClient(const std::string& uri, std::vector<std::string> steps) {
  Checker c;
  c.uri = uri;
  if (steps.empty()) {
    steps = {"put", "info", "get", "poll", "exchange", "exchange_meta", "errors", "dict", "reuse"};
  }
  for (const auto& step : steps) {
    auto t0 = std::chrono::steady_clock::now();
    Status st;
    if (step == "put") {
      st = StepPut(c);
    } else if (step == "info") {
      st = StepInfo(c);
    } else if (step == "get") {
      auto batches = SimpleBatches().ValueOrDie();
      st = StepGet(c, "cpp/put", SimpleSchema(), batches);
    } else if (step == "get_simple") {
      auto batches = SimpleBatches().ValueOrDie();
      st = StepGet(c, "simple", SimpleSchema(), batches);
    } else if (step == "poll") {
      st = StepPoll(c);
    } else if (step == "exchange") {
      st = StepExchange(c, false);
    } else if (step == "exchange_meta") {
      st = StepExchange(c, true);
    } else if (step == "errors") {
      st = StepErrors(c);
    } else if (step == "dict") {
      st = StepDict(c);
    } else if (step == "small") {
      st = StepReuse(c, 1);
    } else if (step == "reuse") {
      st = StepReuse(c, 100);
    } else {
      st = Status::Invalid("unknown step ", step);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
    c.Report(step + " (" + std::to_string(ms) + " ms)", st);
  }
  std::cout << c.passed << " passed, " << c.failed << " failed" << std::endl;
  return c.failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: ucx_check server|client URI [steps...]" << std::endl;
    return 2;
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  fl::transport::ucx::InitializeFlightUcx();
#pragma GCC diagnostic pop
  std::string mode = argv[1];
  std::string uri = argv[2];
  if (mode == "server") return RunServer(uri);
  std::vector<std::string> steps(argv + 3, argv + argc);
  return RunClient(uri, steps);
}
