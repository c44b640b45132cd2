#include "mpi/mpi_workers.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <stdexcept>

namespace diffeoflow::mpi {
namespace {

// The largest count one MPI call takes (an int); longer arrays go in chunks of this size.
constexpr std::size_t kChunk = std::size_t{1} << 30;

void Check(int code, const char* what) {
  if (code != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    throw std::runtime_error(std::string(what) + ": " + std::string(text, length));
  }
}

int Count(std::size_t n) { return static_cast<int>(std::min(n, kChunk)); }

}  // namespace

MpiWorkers::MpiWorkers() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw std::logic_error("MpiWorkers: MPI_Init has not been called");
  Check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  Check(MPI_Comm_size(MPI_COMM_WORLD, &count_), "MPI_Comm_size");
}

void MpiWorkers::Sum(double* data, std::size_t n) {
  for (std::size_t done = 0; done < n; done += kChunk) {
    Check(MPI_Allreduce(MPI_IN_PLACE, data + done, Count(n - done), MPI_DOUBLE, MPI_SUM,
                        MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
}

void MpiWorkers::Broadcast(double* data, std::size_t n, int root) {
  if (root < 0 || root >= count_) {
    throw std::invalid_argument("Broadcast: root " + std::to_string(root) + " is not a rank");
  }
  for (std::size_t done = 0; done < n; done += kChunk) {
    Check(MPI_Bcast(data + done, Count(n - done), MPI_DOUBLE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

void MpiWorkers::SumInItemOrder(const std::vector<Item>& local, int total, double* out,
                                std::size_t n) {
  // Who owns which item, on every rank: the counts, then the indices.
  const int mine = static_cast<int>(local.size());
  std::vector<int> counts(static_cast<std::size_t>(count_)), offsets(counts.size() + 1, 0);
  Check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD),
        "MPI_Allgather");
  for (std::size_t r = 0; r < counts.size(); ++r) offsets[r + 1] = offsets[r] + counts[r];
  std::vector<int> indices(static_cast<std::size_t>(offsets.back())), local_indices;
  for (const Item& item : local) local_indices.push_back(item.index);
  Check(MPI_Allgatherv(local_indices.data(), mine, MPI_INT, indices.data(), counts.data(),
                       offsets.data(), MPI_INT, MPI_COMM_WORLD),
        "MPI_Allgatherv");
  // The same checks, with the same message, on every rank: all throw or none does.
  if (static_cast<int>(indices.size()) != total) {
    throw std::invalid_argument("SumInItemOrder: " + std::to_string(indices.size()) +
                                " items over " + std::to_string(count_) + " ranks for a total of " +
                                std::to_string(total));
  }
  std::vector<int> owner(static_cast<std::size_t>(total), -1);
  for (int r = 0; r < count_; ++r) {
    for (int k = offsets[static_cast<std::size_t>(r)]; k < offsets[static_cast<std::size_t>(r) + 1];
         ++k) {
      const int i = indices[static_cast<std::size_t>(k)];
      if (i < 0 || i >= total || owner[static_cast<std::size_t>(i)] != -1) {
        throw std::invalid_argument("SumInItemOrder: item " + std::to_string(i) +
                                    " is out of range or given twice");
      }
      owner[static_cast<std::size_t>(i)] = r;
    }
  }
  std::fill(out, out + n, 0.0);
  if (total == 0) return;
  std::vector<const double*> data(static_cast<std::size_t>(total), nullptr);
  for (const Item& item : local) data[static_cast<std::size_t>(item.index)] = item.data;
  // The accumulator starts as zeros on the first item's owner and moves to the owner of each
  // next item that lives on another rank.
  int holder = owner[0];
  for (int i = 0; i < total; ++i) {
    const int o = owner[static_cast<std::size_t>(i)];
    if (o != holder) {
      for (std::size_t done = 0; done < n; done += kChunk) {
        if (rank_ == holder) {
          Check(MPI_Send(out + done, Count(n - done), MPI_DOUBLE, o, i, MPI_COMM_WORLD),
                "MPI_Send");
        } else if (rank_ == o) {
          Check(MPI_Recv(out + done, Count(n - done), MPI_DOUBLE, holder, i, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE),
                "MPI_Recv");
        }
      }
      holder = o;
    }
    if (rank_ == o) {
      const double* item = data[static_cast<std::size_t>(i)];
      for (std::size_t k = 0; k < n; ++k) out[k] += item[k];
    }
  }
  Broadcast(out, n, holder);
}

std::string MpiWorkers::FirstError(const std::string& local) {
  const int candidate = local.empty() ? count_ : rank_;
  int first = count_;
  Check(MPI_Allreduce(&candidate, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  if (first == count_) return "";
  unsigned long long length = rank_ == first ? local.size() : 0;
  Check(MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG_LONG, first, MPI_COMM_WORLD), "MPI_Bcast");
  std::string message = rank_ == first ? local : std::string(length, '\0');
  for (std::size_t done = 0; done < length; done += kChunk) {
    Check(MPI_Bcast(message.data() + done, Count(length - done), MPI_CHAR, first, MPI_COMM_WORLD),
          "MPI_Bcast");
  }
  return message;
}

}  // namespace diffeoflow::mpi
