// Reshard plans by rectangle intersection and their reference executor (docs/parallel.md).
#include "parallel/reshard.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

#include "core/check.h"

namespace hydraulis::parallel {

namespace {

// One block of one local tensor, with the local row where it starts.
struct Piece {
  int rank = 0;
  int tensor = 0;
  int64_t local_row0 = 0;
  Block block;
};

struct Rect {
  int64_t row0, row1, col0, col1;
};

Rect rect_of(const Block& b) {
  return {b.row0, b.row1, b.col0, b.col1};
}

bool intersect(const Rect& a, const Rect& b, Rect& out) {
  out = {std::max(a.row0, b.row0), std::min(a.row1, b.row1), std::max(a.col0, b.col0),
         std::min(a.col1, b.col1)};
  return out.row0 < out.row1 && out.col0 < out.col1;
}

// How many of `pieces` (already clipped to `target`) cover each element of target, by a
// coordinate-compressed grid of the pieces' edges: the minimum and maximum over target, and an
// element to name in an error (the first uncovered one, else the first covered twice).
struct Multiplicity {
  int min = 1, max = 1;
  int64_t row = 0, col = 0;
};

Multiplicity cover(const Rect& target, const std::vector<Rect>& pieces) {
  std::vector<int64_t> rows{target.row0, target.row1}, cols{target.col0, target.col1};
  for (const Rect& p : pieces) {
    rows.insert(rows.end(), {p.row0, p.row1});
    cols.insert(cols.end(), {p.col0, p.col1});
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  std::sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  const size_t nr = rows.size() - 1, nc = cols.size() - 1;
  std::vector<int> count(nr * nc, 0);
  auto index = [](const std::vector<int64_t>& v, int64_t x) {
    return static_cast<size_t>(std::lower_bound(v.begin(), v.end(), x) - v.begin());
  };
  for (const Rect& p : pieces) {
    for (size_t i = index(rows, p.row0); i < index(rows, p.row1); ++i) {
      for (size_t j = index(cols, p.col0); j < index(cols, p.col1); ++j) ++count[i * nc + j];
    }
  }
  Multiplicity m;
  if (nr * nc == 0) return m;  // empty target
  m.min = std::numeric_limits<int>::max();
  m.max = 0;
  bool named_zero = false, named_multi = false;
  for (size_t i = 0; i < nr; ++i) {
    for (size_t j = 0; j < nc; ++j) {
      const int c = count[i * nc + j];
      m.min = std::min(m.min, c);
      m.max = std::max(m.max, c);
      if (c == 0 && !named_zero) {
        named_zero = true;
        m.row = rows[i], m.col = cols[j];
      } else if (c > 1 && !named_multi && !named_zero) {
        named_multi = true;
        m.row = rows[i], m.col = cols[j];
      }
    }
  }
  return m;
}

// Pieces of a layout (tensors filtered by `use`), grouped by parameter and sorted by row0, with
// each parameter's tallest block for the interval search.
struct PieceIndex {
  std::map<int, std::vector<Piece>> by_param;
  std::map<int, int64_t> max_rows;

  // Pieces of param whose rows intersect [row0, row1) (then filtered by columns by the caller).
  std::vector<const Piece*> candidates(int param, int64_t row0, int64_t row1) const {
    std::vector<const Piece*> out;
    auto it = by_param.find(param);
    if (it == by_param.end()) return out;
    const int64_t tallest = max_rows.at(param);
    auto first = std::lower_bound(it->second.begin(), it->second.end(), row0 - tallest + 1,
                                  [](const Piece& p, int64_t r) { return p.block.row0 < r; });
    for (auto p = first; p != it->second.end() && p->block.row0 < row1; ++p) {
      if (p->block.row1 > row0) out.push_back(&*p);
    }
    return out;
  }
};

template <typename Use>
std::vector<Piece> pieces_of(const Layout& layout, Use use) {
  std::vector<Piece> out;
  for (int r = 0; r < layout.world_size(); ++r) {
    const auto& tensors = layout.ranks[static_cast<size_t>(r)].tensors;
    for (size_t t = 0; t < tensors.size(); ++t) {
      if (!use(tensors[t])) continue;
      int64_t local = 0;
      for (const Block& b : tensors[t].blocks) {
        out.push_back({r, static_cast<int>(t), local, b});
        local += b.rows();
      }
    }
  }
  return out;
}

PieceIndex index_pieces(const std::vector<Piece>& pieces) {
  PieceIndex index;
  for (const Piece& p : pieces) {
    index.by_param[p.block.param].push_back(p);
    int64_t& tallest = index.max_rows[p.block.param];
    tallest = std::max(tallest, p.block.rows());
  }
  for (auto& [param, list] : index.by_param) {
    std::stable_sort(list.begin(), list.end(),
                     [](const Piece& a, const Piece& b) { return a.block.row0 < b.block.row0; });
  }
  return index;
}

core::Status check_layout(const Layout& layout, const char* side) {
  for (int r = 0; r < layout.world_size(); ++r) {
    const auto& tensors = layout.ranks[static_cast<size_t>(r)].tensors;
    for (size_t t = 0; t < tensors.size(); ++t) {
      for (const Block& b : tensors[t].blocks) {
        if (b.param != tensors[t].param || b.row0 > b.row1 || b.col0 >= b.col1 ||
            b.col0 != tensors[t].blocks.front().col0 || b.col1 != tensors[t].blocks.front().col1) {
          return core::invalid_argument(
              "{} rank {} tensor {} (parameter {}): block of parameter {} rows [{}, {}) cols [{}, "
              "{}) does not stack (one parameter, equal non-empty column ranges per tensor)",
              side, r, t, tensors[t].param, b.param, b.row0, b.row1, b.col0, b.col1);
        }
      }
    }
  }
  return core::Status::ok();
}

std::string where(const char* side, const Piece& p, int64_t row, int64_t col) {
  return fmt::format("{} rank {} tensor {} (parameter {}) element ({}, {})", side, p.rank, p.tensor,
                     p.block.param, row, col);
}

void merge_sorted(std::vector<Copy>& list) {
  std::sort(list.begin(), list.end(), [](const Copy& a, const Copy& b) {
    return std::tie(a.src_tensor, a.src_row, a.src_col, a.dst_tensor, a.dst_row, a.dst_col) <
           std::tie(b.src_tensor, b.src_row, b.src_col, b.dst_tensor, b.dst_row, b.dst_col);
  });
  std::vector<Copy> merged;
  for (const Copy& c : list) {
    if (!merged.empty()) {
      Copy& m = merged.back();
      if (m.src_tensor == c.src_tensor && m.dst_tensor == c.dst_tensor && m.src_col == c.src_col &&
          m.dst_col == c.dst_col && m.cols == c.cols && m.src_row + m.rows == c.src_row &&
          m.dst_row + m.rows == c.dst_row) {
        m.rows += c.rows;
        continue;
      }
    }
    merged.push_back(c);
  }
  list = std::move(merged);
}

}  // namespace

core::StatusOr<ReshardPlan> make_reshard_plan(const Layout& src, const Layout& dst,
                                              ReshardMode mode) {
  if (src.world_size() != dst.world_size()) {
    return core::invalid_argument(
        "reshard from a layout of {} ranks to one of {}: both must cover the same world",
        src.world_size(), dst.world_size());
  }
  HYD_RETURN_IF_ERROR(check_layout(src, "src"));
  HYD_RETURN_IF_ERROR(check_layout(dst, "dst"));
  const bool assign = mode == ReshardMode::kAssign;
  // The owner side holds each element at most once (src for kAssign, dst for kAccumulate); the
  // other side's blocks are each tiled exactly by owner pieces.
  const Layout& owner_layout = assign ? src : dst;
  const Layout& other_layout = assign ? dst : src;
  const char* owner_side = assign ? "src" : "dst";
  const char* other_side = assign ? "dst" : "src";
  const std::vector<Piece> owners =
      pieces_of(owner_layout, [](const LocalTensor&) { return true; });
  const std::vector<Piece> others =
      pieces_of(other_layout, [&](const LocalTensor& t) { return assign || t.counts_for_grad; });
  const PieceIndex index = index_pieces(owners);
  // kAccumulate: what each owner piece receives, to check every owned element gets a contribution.
  std::map<const Piece*, std::vector<Rect>> received;

  ReshardPlan plan;
  plan.mode = mode;
  const size_t world = static_cast<size_t>(src.world_size());
  plan.copies.assign(world, std::vector<std::vector<Copy>>(world));
  for (const Piece& x : others) {
    const Rect xr = rect_of(x.block);
    std::vector<Rect> tiles;
    std::vector<const Piece*> tile_owner;
    for (const Piece* o : index.candidates(x.block.param, xr.row0, xr.row1)) {
      Rect cut;
      if (!intersect(xr, rect_of(o->block), cut)) continue;
      tiles.push_back(cut);
      tile_owner.push_back(o);
    }
    const Multiplicity m = cover(xr, tiles);
    if (m.min == 0) {
      return core::invalid_argument(
          "{} has no {} in the {} layout: the {} layout must hold every element the {} layout "
          "needs",
          where(other_side, x, m.row, m.col), assign ? "source" : "owner", owner_side, owner_side,
          other_side);
    }
    if (m.max > 1) {
      return core::invalid_argument(
          "{} has {} {}s in the {} layout: each element must have one {} (is the {} layout an "
          "optimizer layout?)",
          where(other_side, x, m.row, m.col), m.max, assign ? "source" : "owner", owner_side,
          assign ? "source" : "owner", owner_side);
    }
    for (size_t k = 0; k < tiles.size(); ++k) {
      const Piece& o = *tile_owner[k];
      const Rect& cut = tiles[k];
      const Piece& s = assign ? o : x;
      const Piece& d = assign ? x : o;
      Copy c;
      c.src_tensor = s.tensor;
      c.src_row = s.local_row0 + (cut.row0 - s.block.row0);
      c.src_col = cut.col0 - s.block.col0;
      c.dst_tensor = d.tensor;
      c.dst_row = d.local_row0 + (cut.row0 - d.block.row0);
      c.dst_col = cut.col0 - d.block.col0;
      c.rows = cut.row1 - cut.row0;
      c.cols = cut.col1 - cut.col0;
      plan.copies[static_cast<size_t>(s.rank)][static_cast<size_t>(d.rank)].push_back(c);
      if (!assign) received[&o].push_back(cut);
    }
  }
  if (!assign) {
    for (const auto& [param, list] : index.by_param) {
      for (const Piece& o : list) {
        auto it = received.find(&o);
        const Multiplicity m =
            cover(rect_of(o.block), it == received.end() ? std::vector<Rect>{} : it->second);
        if (m.min == 0 && o.block.numel() > 0) {
          return core::invalid_argument(
              "{} receives no gradient: no src tensor that counts for the gradient holds it (is "
              "a stage, the embedding or the LM head missing from the strategy layout?)",
              where("dst", o, m.row, m.col));
        }
      }
    }
  }
  for (auto& row : plan.copies) {
    for (auto& list : row) merge_sorted(list);
  }
  return plan;
}

int64_t ReshardPlan::elements(int src_rank, int dst_rank) const {
  int64_t n = 0;
  for (const Copy& c : copies[static_cast<size_t>(src_rank)][static_cast<size_t>(dst_rank)]) {
    n += c.numel();
  }
  return n;
}

int64_t ReshardPlan::elements_across_ranks() const {
  int64_t n = 0;
  for (int s = 0; s < world_size(); ++s) {
    for (int d = 0; d < world_size(); ++d) {
      if (s != d) n += elements(s, d);
    }
  }
  return n;
}

int64_t ReshardPlan::elements_local() const {
  int64_t n = 0;
  for (int r = 0; r < world_size(); ++r) n += elements(r, r);
  return n;
}

std::vector<int64_t> ReshardPlan::elements_sent() const {
  std::vector<int64_t> sent(static_cast<size_t>(world_size()), 0);
  for (int s = 0; s < world_size(); ++s) {
    for (int d = 0; d < world_size(); ++d) {
      if (s != d) sent[static_cast<size_t>(s)] += elements(s, d);
    }
  }
  return sent;
}

std::vector<int64_t> ReshardPlan::elements_received() const {
  std::vector<int64_t> received(static_cast<size_t>(world_size()), 0);
  for (int s = 0; s < world_size(); ++s) {
    for (int d = 0; d < world_size(); ++d) {
      if (s != d) received[static_cast<size_t>(d)] += elements(s, d);
    }
  }
  return received;
}

int64_t ReshardPlan::num_copies() const {
  int64_t n = 0;
  for (const auto& row : copies) {
    for (const auto& list : row) n += static_cast<int64_t>(list.size());
  }
  return n;
}

std::string ReshardPlan::summary() const {
  const std::vector<int64_t> sent = elements_sent(), received = elements_received();
  const int64_t max_sent = sent.empty() ? 0 : *std::max_element(sent.begin(), sent.end());
  const int64_t max_received =
      received.empty() ? 0 : *std::max_element(received.begin(), received.end());
  return fmt::format(
      "{}: {} elements across ranks, {} local, {} copies; max per rank sent {}, received {}",
      mode == ReshardMode::kAssign ? "assign" : "accumulate", elements_across_ranks(),
      elements_local(), num_copies(), max_sent, max_received);
}

void execute_reshard(const ReshardPlan& plan, const Layout& src, const Layout& dst,
                     const std::vector<std::vector<std::vector<float>>>& src_data,
                     std::vector<std::vector<std::vector<float>>>& dst_data, ReshardMode mode) {
  HYD_CHECK(plan.mode == mode, "execute_reshard: the plan was made for the other mode");
  HYD_CHECK(src_data.size() == static_cast<size_t>(src.world_size()),
            "execute_reshard: {} ranks of data for {} ranks", src_data.size(), src.world_size());
  const float init = mode == ReshardMode::kAssign ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
  dst_data.assign(static_cast<size_t>(dst.world_size()), {});
  for (int r = 0; r < dst.world_size(); ++r) {
    for (const LocalTensor& t : dst.ranks[static_cast<size_t>(r)].tensors) {
      dst_data[static_cast<size_t>(r)].emplace_back(static_cast<size_t>(t.numel()), init);
    }
  }
  // Destination-major would be the natural receive order; iterating src rank first per dst gives
  // the documented summation order (increasing src rank, then list order).
  for (int d = 0; d < dst.world_size(); ++d) {
    for (int s = 0; s < src.world_size(); ++s) {
      for (const Copy& c : plan.copies[static_cast<size_t>(s)][static_cast<size_t>(d)]) {
        const LocalTensor& st =
            src.ranks[static_cast<size_t>(s)].tensors[static_cast<size_t>(c.src_tensor)];
        const LocalTensor& dt =
            dst.ranks[static_cast<size_t>(d)].tensors[static_cast<size_t>(c.dst_tensor)];
        const std::vector<float>& from =
            src_data[static_cast<size_t>(s)][static_cast<size_t>(c.src_tensor)];
        std::vector<float>& to =
            dst_data[static_cast<size_t>(d)][static_cast<size_t>(c.dst_tensor)];
        HYD_CHECK(from.size() == static_cast<size_t>(st.numel()),
                  "execute_reshard: rank {} tensor {} has {} values for {} elements", s,
                  c.src_tensor, from.size(), st.numel());
        for (int64_t i = 0; i < c.rows; ++i) {
          for (int64_t j = 0; j < c.cols; ++j) {
            const float v = from[static_cast<size_t>((c.src_row + i) * st.cols() + c.src_col + j)];
            float& out = to[static_cast<size_t>((c.dst_row + i) * dt.cols() + c.dst_col + j)];
            out = mode == ReshardMode::kAssign ? v : out + v;
          }
        }
      }
    }
  }
}

}  // namespace hydraulis::parallel
