#include "http/server_common.h"

namespace sluice::http {

void ConnectionSet::add(Member* m) {
  m->prev = nullptr;
  m->next = head_;
  if (head_) head_->prev = m;
  head_ = m;
  ++size_;
  if (draining_) m->drain();
}

void ConnectionSet::remove(Member* m) {
  if (m->prev) m->prev->next = m->next;
  else head_ = m->next;
  if (m->next) m->next->prev = m->prev;
  m->prev = m->next = nullptr;
  --size_;
}

void ConnectionSet::drain_all() {
  draining_ = true;
  for (Member* m = head_; m;) {
    Member* next = m->next;  // drain() may close but never unlinks synchronously
    m->drain();
    m = next;
  }
}

}  // namespace sluice::http
